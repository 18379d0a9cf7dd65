// Types of Parley's browser SDK, /sdk/parley.js: the messaging calls of
// the ByteRTC Web SDK (@volcengine/rtc 4.x). docs/web.md is the guide.
//
//   import { createEngine, events } from '/sdk/parley.js';

/** Event names, as ByteRTC Web's `VERTC.events`. */
export declare const events: {
  readonly onUserJoined: "onUserJoined";
  readonly onUserLeave: "onUserLeave";
  readonly onUserMessageReceived: "onUserMessageReceived";
  readonly onUserBinaryMessageReceived: "onUserBinaryMessageReceived";
  readonly onRoomMessageReceived: "onRoomMessageReceived";
  readonly onRoomBinaryMessageReceived: "onRoomBinaryMessageReceived";
  readonly onUserMessageReceivedOutsideRoom: "onUserMessageReceivedOutsideRoom";
  readonly onUserBinaryMessageReceivedOutsideRoom: "onUserBinaryMessageReceivedOutsideRoom";
  readonly onUserMessageSendResult: "onUserMessageSendResult";
  readonly onRoomMessageSendResult: "onRoomMessageSendResult";
  readonly onUserMessageSendResultOutsideRoom: "onUserMessageSendResultOutsideRoom";
  readonly onServerMessageSendResult: "onServerMessageSendResult";
  readonly onServerParamsSetResult: "onServerParamsSetResult";
  readonly onGetPeerOnlineStatus: "onGetPeerOnlineStatus";
  readonly onLoginResult: "onLoginResult";
  readonly onLogout: "onLogout";
  readonly onConnectionStateChanged: "onConnectionStateChanged";
  readonly onTokenWillExpire: "onTokenWillExpire";
  readonly onError: "onError";
};

/** How a user message travels (the data channel it takes). Default: RELIABLE_ORDERED. */
export declare const MessageConfig: {
  readonly RELIABLE_ORDERED: 0;
  readonly UNRELIABLE_ORDERED: 1;
  readonly UNRELIABLE_UNORDERED: 2;
};
export type MessageConfig = 0 | 1 | 2;

export declare const ConnectionState: {
  readonly DISCONNECTED: 1;
  readonly CONNECTING: 2;
  readonly CONNECTED: 3;
  readonly RECONNECTING: 4;
  readonly RECONNECTED: 5;
  readonly LOST: 6;
  readonly FAILED: 7;
};
export type ConnectionState = 1 | 2 | 3 | 4 | 5 | 6 | 7;

export declare const UserOnlineStatus: { readonly OFFLINE: 0; readonly ONLINE: 1; readonly UNREACHABLE: 2 };
export type UserOnlineStatus = 0 | 1 | 2;

export declare const UserOfflineReason: { readonly QUIT: 0; readonly DROPPED: 1 };
export declare const LogoutReason: { readonly LOGOUT: 0; readonly DUPLICATE_LOGIN: 1 };

/**
 * What a Promise of this SDK rejects with. `code` is ByteRTC Web's string
 * (USER_MESSAGE_NO_RECEIVER, USER_MESSAGE_TIMEOUT, USER_MESSAGE_NOT_JOIN,
 * USER_MESSAGE_NOT_LOGIN, INVALID_TOKEN, LOGIN_FAILED, …; docs/web.md
 * lists them); `result` the native SDKs' number (UserMessageSendResult,
 * ErrorCode or LoginErrorCode; -1 for a call made in the wrong state).
 */
export declare class RtcError extends Error {
  constructor(code: string, result: number, message?: string);
  readonly code: string;
  readonly result: number;
}

export interface UserInfo {
  userId: string;
  extraInfo?: string;
}

export interface EngineConfig {
  /** The signaling URL, e.g. ws://127.0.0.1:7880/rtc. Default: /rtc on the page's own host. */
  serverUrl?: string;
  /**
   * How long the PeerConnection to the server is kept once the engine is
   * in no room (left, removed, or its join failed): a join within that
   * time reuses it; after it, it closes, and the next join sets up a new
   * one. The login does not need it. Negative: kept until destroy. Default
   * (and 0): 30000.
   */
  idleTransportMs?: number;
}

/** The payload of each event. */
export interface EventPayloads {
  onUserJoined: { userInfo: Required<UserInfo> };
  onUserLeave: { userInfo: Required<UserInfo>; reason: number };
  onUserMessageReceived: { userId: string; message: string };
  onUserBinaryMessageReceived: { userId: string; message: ArrayBuffer };
  onRoomMessageReceived: { userId: string; message: string };
  onRoomBinaryMessageReceived: { userId: string; message: ArrayBuffer };
  onUserMessageReceivedOutsideRoom: { userId: string; message: string };
  onUserBinaryMessageReceivedOutsideRoom: { userId: string; message: ArrayBuffer };
  onUserMessageSendResult: { msgid: number; error: number };
  onRoomMessageSendResult: { msgid: number; error: number };
  onUserMessageSendResultOutsideRoom: { msgid: number; error: number };
  onServerMessageSendResult: { msgid: number; error: number; message: ArrayBuffer };
  onServerParamsSetResult: { error: number };
  onGetPeerOnlineStatus: { userId: string; status: UserOnlineStatus };
  onLoginResult: { userId: string; errorCode: number; elapsed: number };
  onLogout: { reason: number };
  onConnectionStateChanged: { state: ConnectionState };
  onTokenWillExpire: Record<string, never>;
  /** A room error: DUPLICATE_LOGIN (-1004), KICKED_OUT (-1006), TOKEN_EXPIRED (-1009), … */
  onError: { errorCode: string; result: number; errorMessage: string };
}

export declare class Engine {
  /** Use createEngine. */
  constructor(appId: string, config?: EngineConfig);
  readonly appId: string;
  on<K extends keyof EventPayloads>(event: K, handler: (payload: EventPayloads[K]) => void): void;
  off<K extends keyof EventPayloads>(event: K, handler?: (payload: EventPayloads[K]) => void): void;
  getConnectionState(): ConnectionState;

  /** Resolves once joined (member list in, data channels open); one room per engine. */
  joinRoom(token: string, roomId: string, userInfo: UserInfo, roomConfig?: object): Promise<void>;
  leaveRoom(): Promise<void>;
  updateToken(token: string): Promise<void>;

  sendUserMessage(userId: string, message: string, config?: MessageConfig): Promise<void>;
  sendUserBinaryMessage(userId: string, message: BufferSource, config?: MessageConfig): Promise<void>;
  sendRoomMessage(message: string): Promise<void>;
  sendRoomBinaryMessage(message: BufferSource): Promise<void>;

  login(token: string, userId: string): Promise<void>;
  logout(): Promise<void>;
  updateLoginToken(token: string): void;
  getPeerOnlineStatus(userId: string): Promise<UserOnlineStatus>;
  sendUserMessageOutsideRoom(userId: string, message: string, config?: MessageConfig): Promise<void>;
  sendUserBinaryMessageOutsideRoom(userId: string, message: BufferSource, config?: MessageConfig): Promise<void>;

  setServerParams(signature: string, url: string): Promise<void>;
  sendServerMessage(message: string): Promise<{ message: ArrayBuffer }>;
  sendServerBinaryMessage(message: BufferSource): Promise<{ message: ArrayBuffer }>;

  destroy(): Promise<void>;
  /** Cuts the signaling WebSocket as a network drop would; the engine resumes the session. */
  dropConnectionForTesting(): void;
  /** Closes the PeerConnection as a failure would; the engine builds a new one and rejoins its room. */
  dropTransportForTesting(): void;
  /** The signaling replay buffer's frames (at most 1024 once messages wait) and the messages waiting for room in it. */
  signalQueuedForTesting(): { kept: number; waiting: number };
}

/** Creates an engine; it connects on its first joinRoom or login. */
export declare function createEngine(appId: string, config?: EngineConfig): Engine;
export declare function destroyEngine(engine: Engine): Promise<void>;
