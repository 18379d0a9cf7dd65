// ByteRTC Web's enums and string codes, with the numbers of ByteRTC's
// native SDKs (and of the Go SDK's events.go).

/** Event names, as ByteRTC Web's `VERTC.events`. */
export const events = {
  onUserJoined: "onUserJoined",
  onUserLeave: "onUserLeave",
  onUserMessageReceived: "onUserMessageReceived",
  onUserBinaryMessageReceived: "onUserBinaryMessageReceived",
  onRoomMessageReceived: "onRoomMessageReceived",
  onRoomBinaryMessageReceived: "onRoomBinaryMessageReceived",
  onUserMessageReceivedOutsideRoom: "onUserMessageReceivedOutsideRoom",
  onUserBinaryMessageReceivedOutsideRoom: "onUserBinaryMessageReceivedOutsideRoom",
  onUserMessageSendResult: "onUserMessageSendResult",
  onRoomMessageSendResult: "onRoomMessageSendResult",
  onUserMessageSendResultOutsideRoom: "onUserMessageSendResultOutsideRoom",
  onServerMessageSendResult: "onServerMessageSendResult",
  onServerParamsSetResult: "onServerParamsSetResult",
  onGetPeerOnlineStatus: "onGetPeerOnlineStatus",
  onLoginResult: "onLoginResult",
  onLogout: "onLogout",
  onConnectionStateChanged: "onConnectionStateChanged",
  onTokenWillExpire: "onTokenWillExpire",
  onError: "onError",
} as const;

export type EventName = keyof typeof events;

/** How a user message travels: the data channel it takes. */
export const MessageConfig = {
  RELIABLE_ORDERED: 0,
  UNRELIABLE_ORDERED: 1,
  UNRELIABLE_UNORDERED: 2,
} as const;

export const ConnectionState = {
  DISCONNECTED: 1,
  CONNECTING: 2,
  CONNECTED: 3,
  RECONNECTING: 4,
  RECONNECTED: 5,
  LOST: 6,
  FAILED: 7,
} as const;

export const UserOnlineStatus = { OFFLINE: 0, ONLINE: 1, UNREACHABLE: 2 } as const;

export const UserOfflineReason = { QUIT: 0, DROPPED: 1 } as const;

export const LogoutReason = { LOGOUT: 0, DUPLICATE_LOGIN: 1 } as const;

/** The string code of each UserMessageSendResult / RoomMessageSendResult number. */
const sendCodes: Record<number, string> = {
  1: "USER_MESSAGE_TIMEOUT",
  2: "USER_MESSAGE_BROKEN",
  3: "USER_MESSAGE_NO_RECEIVER",
  4: "USER_MESSAGE_NO_RELAY_PATH",
  5: "USER_MESSAGE_EXCEED_QPS",
  17: "USER_MESSAGE_E2BS_SEND_FAILED",
  18: "USER_MESSAGE_E2BS_RETURN_FAILED",
  100: "USER_MESSAGE_NOT_JOIN",
  101: "USER_MESSAGE_INIT",
  102: "USER_MESSAGE_NO_CONNECTION",
  103: "USER_MESSAGE_EXCEED_MAX_LENGTH",
  104: "USER_MESSAGE_EMPTY_USER",
  105: "USER_MESSAGE_NOT_LOGIN",
  106: "USER_MESSAGE_SERVER_PARAMS_NOT_SET",
  1000: "USER_MESSAGE_UNKNOWN",
};

/** The string code of each room ErrorCode number. */
const roomCodes: Record<number, string> = {
  [-1000]: "INVALID_TOKEN",
  [-1001]: "JOIN_ROOM_FAILED",
  [-1004]: "DUPLICATE_LOGIN",
  [-1006]: "KICKED_OUT",
  [-1007]: "ROOM_ID_ILLEGAL",
  [-1009]: "TOKEN_EXPIRED",
  [-1010]: "UPDATE_TOKEN_WITH_INVALID_TOKEN",
  [-1011]: "ROOM_DISMISS",
  [-1014]: "USER_ID_DIFFERENT",
};

/** The string code of each LoginErrorCode number. */
const loginCodes: Record<number, string> = {
  [-1000]: "LOGIN_INVALID_TOKEN",
  [-1001]: "LOGIN_FAILED",
  [-1002]: "LOGIN_INVALID_USER_ID",
  [-1003]: "LOGIN_SERVER_ERROR",
};

/**
 * The error a Promise of this SDK rejects with: `code` is ByteRTC Web's
 * string, `result` the number of the native SDKs' enum (a
 * UserMessageSendResult for a send, an ErrorCode for a room call, a
 * LoginErrorCode for login).
 */
export class RtcError extends Error {
  constructor(
    readonly code: string,
    readonly result: number,
    message?: string,
  ) {
    super(message ? `${code} (${result}): ${message}` : `${code} (${result})`);
    this.name = "RtcError";
  }
}

export function sendError(result: number, message?: string): RtcError {
  return new RtcError(sendCodes[result] ?? "USER_MESSAGE_UNKNOWN", result, message);
}

export function roomError(result: number, message?: string): RtcError {
  return new RtcError(roomCodes[result] ?? "JOIN_ROOM_FAILED", result, message);
}

export function loginError(result: number, message?: string): RtcError {
  return new RtcError(loginCodes[result] ?? "LOGIN_FAILED", result, message);
}

/** A call made in a state that does not allow it (no number applies). */
export function stateError(code: string, message: string): RtcError {
  return new RtcError(code, -1, message);
}

export function roomCodeName(result: number): string {
  return roomCodes[result] ?? "JOIN_ROOM_FAILED";
}
