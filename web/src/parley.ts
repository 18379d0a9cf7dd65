// Parley's browser SDK: the messaging calls of the ByteRTC Web SDK
// (@volcengine/rtc 4.x) over Parley's protocol, packet version 3
// (docs/protocol.md). One engine joins one room, as in ByteRTC Web.
// docs/web.md is the guide; parley.d.ts the types.

import { create, toBinary } from "@bufbuild/protobuf";
import { AckBatcher } from "./acks";
import { PacketSchema, type Message, type Packet } from "./gen/parley/v1/packet_pb";
import type { Member, ServerFrame } from "./gen/parley/v1/signal_pb";
import { Signal, SignalError, type ClientBody } from "./signal";
import { RELIABLE, Transport } from "./transport";
import {
  ConnectionState,
  LogoutReason,
  MessageConfig,
  RtcError,
  UserOfflineReason,
  UserOnlineStatus,
  events,
  loginError,
  roomCodeName,
  roomError,
  sendError,
  stateError,
  type EventName,
} from "./codes";

type ConnectionState = (typeof ConnectionState)[keyof typeof ConnectionState];

export {
  ConnectionState,
  LogoutReason,
  MessageConfig,
  RtcError,
  UserOfflineReason,
  UserOnlineStatus,
  events,
};

const PACKET_VERSION = 3;
const MAX_PAYLOAD = 65536;
const MESSAGE_TIMEOUT_MS = 10_000; // a send without a result is Timeout
const JOIN_TIMEOUT_MS = 20_000; // a join, from start to joined
const LEAVE_TIMEOUT_MS = 5_000;
const IDLE_TRANSPORT_MS = 30_000; // EngineConfig.idleTransportMs's default
const ACK_DELAY_MS = 2; // a user message's ack (its sender waits): batched per sender, 2 ms after the first
// A broadcast's ack settles only the server's copy (its sender's result
// came when the server handed it on), so it may wait: up to
// BROADCAST_ACK_DELAY_MS, or until BROADCAST_ACK_BYTES of broadcasts are
// owed; meanwhile it rides with the page's next reliable send in the room.
// A page receiving a steady trickle of broadcasts then acks at most once
// every 2 s, not once per broadcast; the server keeps each copy that much
// longer, well inside its member queue. The Go SDK's broadcastAckDelay and
// broadcastAckBytes.
const BROADCAST_ACK_DELAY_MS = 2_000;
const BROADCAST_ACK_BYTES = 256 << 10;
const ID_PATTERN = /^[a-zA-Z0-9_@\-.]{1,128}$/;

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

type Handler = (payload: any) => void;

/** A send waiting for its result. */
interface PendingSend {
  kind: "user" | "room" | "outside" | "server";
  to: string;
  reliable: boolean;
  resolve(v: any): void;
  reject(e: RtcError): void;
  timer: ReturnType<typeof setTimeout>;
  /** The encoded packet of a reliable room send, for sending again after a rejoin. */
  packet?: Uint8Array;
}

/** The engine's room: at most one. */
interface RoomState {
  roomId: string;
  handle: number;
  token: string;
  userInfo: { userId: string; extraInfo: string };
  /** joining: until the first join completes; joined; rejoining after a lost transport. */
  phase: "joining" | "joined" | "rejoining";
  members: Map<string, string>;
  /** Member pages gathered until the one whose more is false. */
  pages: Member[];
  listDone: boolean;
  /** Events and messages that came before the join completed, in order. */
  held: (() => void)[];
  /** Sends made while the room rejoins, sent once it is joined again. */
  heldSends: { stream: number; bytes: Uint8Array }[];
  /** Receivers' highest accepted msg_id per (from, sender_instance), for duplicates. */
  seen: Map<string, bigint>;
  /** The acks the room owes for reliable messages received; dropped when the room is gone. */
  acks: AckBatcher;
  join: { resolve(): void; reject(e: RtcError): void; timer: ReturnType<typeof setTimeout> } | null;
}

/**
 * The engine: createEngine's result. Its methods mirror ByteRTC Web's
 * messaging calls; each returns a Promise that resolves on Success and
 * rejects with an {@link RtcError}.
 */
export class Engine {
  private readonly signal: Signal;
  private readonly handlers = new Map<string, Set<Handler>>();
  private transport: Transport | null = null;
  /**
   * A TransportRequest was accepted on the current session: a new
   * PeerConnection's request must then go before the join that uses it,
   * since the server may still think the old one open (docs/protocol.md,
   * "When to send TransportRequest").
   */
  private transportAccepted = false;
  private readonly idleTransportMs: number;
  private idleTimer: ReturnType<typeof setTimeout> | null = null;
  /** Resolves once the current transport is open (its answer applied, its channels up). */
  private transportReady: Promise<void> | null = null;
  private room: RoomState | null = null;
  private nextHandle = 1; // never reused, for the engine's life
  private nextMsgID = 1n;
  private readonly senderInstance: bigint;
  private pending = new Map<bigint, PendingSend>();
  private readonly outsideAcks = new AckBatcher({
    delayMs: ACK_DELAY_MS,
    send: (upTo) => {
      for (const [peer, id] of upTo) this.signal.notify({ case: "ack", value: { peer, upTo: id } });
    },
  });
  private login_: { userId: string; token: string; loggedIn: boolean } | null = null;
  private serverParamsSet = false;
  private destroyed = false;
  private state: ConnectionState = ConnectionState.DISCONNECTED;

  constructor(
    readonly appId: string,
    config: EngineConfig = {},
  ) {
    const idle = config.idleTransportMs ?? 0;
    this.idleTransportMs = idle > 0 ? idle : idle < 0 ? 0 : IDLE_TRANSPORT_MS;
    let url = config.serverUrl;
    if (!url) {
      const l = globalThis.location;
      url = `${l.protocol === "https:" ? "wss:" : "ws:"}//${l.host}/rtc`;
    }
    const r = new Uint32Array(2);
    crypto.getRandomValues(r);
    this.senderInstance = ((BigInt(r[0]) << 32n) | BigInt(r[1])) | 1n; // random, odd
    this.signal = new Signal(
      url,
      {
        frame: (f) => this.onFrame(f),
        reconnecting: () => this.setState(ConnectionState.RECONNECTING),
        lost: () => this.setState(ConnectionState.LOST),
        reconnected: (resumed) => this.onReconnected(resumed),
      },
      () => !this.destroyed && (this.room !== null || this.login_ !== null),
    );
    // A page that goes away ends its session at once (close 1000): the
    // others see it leave now, not at the end of the grace period.
    globalThis.addEventListener?.("pagehide", this.onPageHide);
  }

  private readonly onPageHide = (): void => {
    this.destroyed = true;
    this.transport?.close();
    this.signal.close();
  };

  // ---- events

  /** Adds a handler for an event of {@link events}. */
  on(event: EventName | string, handler: Handler): void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler);
  }

  /** Removes a handler added with on; without one, every handler of the event. */
  off(event: EventName | string, handler?: Handler): void {
    if (handler) this.handlers.get(event)?.delete(handler);
    else this.handlers.delete(event);
  }

  /** Calls the handlers in order; one that throws does not stop the others or the SDK. */
  private emit(event: EventName, payload: unknown): void {
    const set = this.handlers.get(event);
    if (!set) return;
    for (const h of [...set]) {
      try {
        h(payload);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }

  private setState(state: ConnectionState): void {
    if (this.state === state) return;
    this.state = state;
    this.emit("onConnectionStateChanged", { state });
  }

  /** The engine's connection state (ConnectionState). */
  getConnectionState(): ConnectionState {
    return this.state;
  }

  private async connect(): Promise<void> {
    if (this.destroyed) throw stateError("ENGINE_DESTROYED", "the engine was destroyed");
    if (this.signal.connected) return;
    if (this.state === ConnectionState.DISCONNECTED || this.state === ConnectionState.FAILED) {
      this.setState(ConnectionState.CONNECTING);
    }
    try {
      await this.signal.connect();
    } catch (e) {
      if (this.state === ConnectionState.CONNECTING) this.setState(ConnectionState.FAILED);
      throw e;
    }
    if (this.state === ConnectionState.CONNECTING) this.setState(ConnectionState.CONNECTED);
  }

  // ---- the room

  /**
   * Joins a room: resolves once the member list is in and the data
   * channels are open; rejects with INVALID_TOKEN, JOIN_ROOM_FAILED,
   * ROOM_ID_ILLEGAL, USER_ID_DIFFERENT (RtcError.result: the ErrorCode).
   */
  async joinRoom(token: string, roomId: string, userInfo: UserInfo, _roomConfig: object = {}): Promise<void> {
    if (this.room) throw stateError("REPEAT_JOIN", `already in room ${this.room.roomId}`);
    if (!ID_PATTERN.test(roomId)) throw roomError(-1007, `room ID ${JSON.stringify(roomId)}`);
    if (!userInfo || !ID_PATTERN.test(userInfo.userId)) throw roomError(-1001, "illegal user ID");
    const room: RoomState = {
      roomId,
      handle: this.nextHandle++,
      token,
      userInfo: { userId: userInfo.userId, extraInfo: userInfo.extraInfo ?? "" },
      phase: "joining",
      members: new Map(),
      pages: [],
      listDone: false,
      held: [],
      heldSends: [],
      seen: new Map(),
      acks: new AckBatcher({
        delayMs: ACK_DELAY_MS,
        lazyMs: BROADCAST_ACK_DELAY_MS,
        lazyBytes: BROADCAST_ACK_BYTES,
        send: (upTo) => this.sendRoomAcks(room, upTo),
      }),
      join: null,
    };
    this.room = room;
    this.stopIdleTimer();
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.dropRoom(room, roomError(-1001, "join timed out")), JOIN_TIMEOUT_MS);
      room.join = { resolve, reject, timer };
    });
    try {
      await this.connect();
    } catch (e) {
      this.dropRoom(room, roomError(-1001, String(e)));
      return done;
    }
    this.sendJoin(room, false);
    return done;
  }

  /**
   * Sends the JoinRequest and, if the session has no transport, a
   * TransportRequest: behind the join on a session that never had one
   * accepted (the server sets one up only for a session with an accepted
   * join), else before it.
   */
  private sendJoin(room: RoomState, rejoin: boolean): void {
    if (this.transport) this.requestJoin(room, rejoin);
    else if (!this.transportAccepted) {
      this.requestJoin(room, rejoin);
      this.startTransport();
    } else
      this.startTransport(() => {
        if (this.room === room) this.requestJoin(room, rejoin);
      });
  }

  private requestJoin(room: RoomState, rejoin: boolean): void {
    const answer = this.signal.request({
      case: "join",
      value: {
        roomId: room.roomId,
        token: room.token,
        userId: room.userInfo.userId,
        extraInfo: room.userInfo.extraInfo,
        appId: this.appId,
        rejoin,
        presenceBatches: true,
        packetVersion: PACKET_VERSION,
        room: room.handle,
      },
    });
    answer.then(
      (f) => {
        if (this.room !== room || f.body.case !== "join") return;
        const code = f.body.value.code;
        if (code !== 0) {
          this.dropRoom(room, roomError(code, f.body.value.reason));
          this.notifyLeave(room, UserOfflineReason.DROPPED);
        }
      },
      (e) => {
        if (e instanceof SignalError && this.room === room && room.join) {
          // The session was lost with the join in flight: onReconnected joins again.
        }
      },
    );
  }

  /**
   * Builds a PeerConnection and offers it in a TransportRequest; then,
   * right behind the request, runs after (the rejoins, which must follow
   * the TransportRequest: docs/protocol.md, "When to send TransportRequest").
   */
  private startTransport(after?: () => void): void {
    const t: Transport = new Transport({
      packet: (stream, p) => this.onPacket(t, stream, p),
      open: () => this.onTransportOpen(t),
      failed: () => this.onTransportFailed(t),
    });
    this.transport = t;
    this.transportReady = (async () => {
      const sdp = await t.offer();
      if (this.transport !== t) throw new Error("replaced");
      const answered = this.signal.request({ case: "transport", value: { sdpOffer: sdp, packetVersion: PACKET_VERSION } });
      after?.();
      const f = await answered;
      if (f.body.case !== "transport" || f.body.value.code !== 0) {
        throw new Error(f.body.case === "transport" ? f.body.value.reason : "no TransportResponse");
      }
      this.transportAccepted = true;
      if (this.transport !== t) throw new Error("replaced");
      await t.answer(f.body.value.sdpAnswer);
    })();
    this.transportReady.catch(() => {
      if (this.transport === t) {
        t.close();
        this.transport = null;
        this.transportReady = null;
      }
    });
  }

  private onTransportOpen(t: Transport): void {
    if (this.transport !== t) return;
    const room = this.room;
    if (room) this.maybeJoined(room);
  }

  /**
   * The PeerConnection failed: build a new one, send its TransportRequest,
   * then rejoin the room on the same session (docs/protocol.md, "Rejoin").
   * Unreliable sends in flight get Broken; reliable ones go again.
   */
  private onTransportFailed(t: Transport): void {
    if (this.transport !== t || this.destroyed) return;
    this.transport = null;
    this.transportReady = null;
    for (const [id, p] of this.pending) {
      if ((p.kind === "user" || p.kind === "room") && !p.reliable) this.settle(id, 2);
    }
    const room = this.room;
    if (!room || !this.signal.connected) return; // onReconnected rebuilds it
    this.startTransport(() => {
      if (this.room === room) this.rejoin(room);
    });
  }

  private rejoin(room: RoomState): void {
    if (room.phase === "joined") room.phase = "rejoining";
    room.pages = [];
    room.listDone = false;
    this.sendJoin(room, true);
  }


  private onReconnected(resumed: boolean): void {
    this.setState(ConnectionState.RECONNECTED);
    if (resumed) {
      const room = this.room;
      if (room && !this.transport && room.phase !== "joining") {
        this.startTransport(() => {
          if (this.room === room) this.rejoin(room);
        });
      }
      return;
    }
    // A new, empty session: its PeerConnection, room and login are gone.
    this.transport?.close();
    this.transport = null;
    this.transportReady = null;
    this.transportAccepted = false;
    this.serverParamsSet = false;
    for (const [id, p] of this.pending) {
      if (p.kind === "outside" || p.kind === "server" || !p.reliable) this.settle(id, 2);
    }
    const room = this.room;
    if (room) {
      if (room.phase === "joining") {
        room.pages = [];
        room.listDone = false;
        this.sendJoin(room, false);
      } else this.rejoin(room);
    }
    const login = this.login_;
    if (login) {
      login.loggedIn = false;
      this.signal.request({ case: "login", value: { appId: this.appId, token: login.token, userId: login.userId } }).then(
        (f) => {
          if (this.login_ === login && f.body.case === "login" && f.body.value.code === 0) login.loggedIn = true;
        },
        () => {},
      );
    }
  }

  /** The join is complete once the last member page is in and the transport is open. */
  private maybeJoined(room: RoomState): void {
    if (this.room !== room || !room.listDone || !this.transport?.isOpen) return;
    const first = room.phase === "joining";
    const before = room.members;
    room.members = new Map(room.pages.map((m) => [m.userId, m.extraInfo]));
    room.pages = [];
    room.phase = "joined";
    if (room.join) {
      clearTimeout(room.join.timer);
      room.join.resolve();
      room.join = null;
    }
    // Members: all of them after a first join, the differences after a rejoin.
    for (const [userId, extraInfo] of room.members) {
      if (first || !before.has(userId)) this.emit("onUserJoined", { userInfo: { userId, extraInfo } });
    }
    if (!first) {
      for (const [userId, extraInfo] of before) {
        if (!room.members.has(userId)) {
          this.emit("onUserLeave", { userInfo: { userId, extraInfo }, reason: UserOfflineReason.DROPPED });
        }
      }
      // Reliable sends with no result go again, in ID order, before the held ones.
      const t = this.transport!;
      const ids = [...this.pending.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      for (const id of ids) {
        const p = this.pending.get(id)!;
        if (p.packet) t.write(RELIABLE, p.packet);
      }
    }
    for (const s of room.heldSends) this.transport!.write(s.stream, s.bytes);
    room.heldSends = [];
    const held = room.held;
    room.held = [];
    for (const h of held) h();
  }

  /**
   * The room is gone without a leave of the page's own (its join failed,
   * or the server removed it): a join in progress rejects with err, its
   * sends fail, and the idle timer starts.
   */
  private dropRoom(room: RoomState, err: RtcError): void {
    if (this.room !== room) return;
    this.room = null;
    room.acks.clear();
    if (room.join) {
      clearTimeout(room.join.timer);
      room.join.reject(err);
      room.join = null;
    }
    this.failRoomSends(2);
    this.armIdleTimer();
  }

  /**
   * Closes the PeerConnection once the engine has been in no room for
   * idleTransportMs, unless a join comes first (stopIdleTimer).
   */
  private armIdleTimer(): void {
    if (this.idleTransportMs <= 0 || this.destroyed) return;
    this.stopIdleTimer();
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      const t = this.transport;
      if (this.room || !t || this.destroyed) return;
      this.transport = null;
      this.transportReady = null;
      t.close();
    }, this.idleTransportMs);
  }

  private stopIdleTimer(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = null;
  }

  private failRoomSends(result: number): void {
    for (const [id, p] of this.pending) {
      if (p.kind === "user" || p.kind === "room") this.settle(id, result);
    }
  }

  private notifyLeave(room: RoomState, reason: number): Promise<unknown> {
    if (!this.signal.connected) return Promise.resolve();
    return this.signal.request({ case: "leave", value: { roomId: room.roomId, reason } }).catch(() => {});
  }

  /** Leaves the room; resolves once the server has answered (at most 5 s). */
  async leaveRoom(): Promise<void> {
    const room = this.room;
    if (!room) return;
    this.room = null;
    room.acks.clear();
    if (room.join) {
      clearTimeout(room.join.timer);
      room.join.reject(roomError(-1001, "left the room"));
      room.join = null;
    }
    this.failRoomSends(2);
    await Promise.race([
      this.notifyLeave(room, UserOfflineReason.QUIT),
      new Promise((r) => setTimeout(r, LEAVE_TIMEOUT_MS)),
    ]);
    if (!this.room) this.armIdleTimer(); // after the leave: the server confirms it before the transport goes
  }

  /** Replaces the room token before it expires (onTokenWillExpire); rejects with UPDATE_TOKEN_WITH_INVALID_TOKEN. */
  async updateToken(token: string): Promise<void> {
    const room = this.room;
    if (!room) throw stateError("NOT_IN_ROOM", "not in a room");
    const f = await this.answer({ case: "updateToken", value: { roomId: room.roomId, token } });
    if (f.body.case !== "updateToken") throw roomError(-1010, "no answer");
    if (f.body.value.code !== 0) throw roomError(f.body.value.code, f.body.value.reason);
    room.token = token;
  }

  // ---- messages in the room

  /** Sends text to one member; config is a {@link MessageConfig} (default reliable ordered). */
  sendUserMessage(userId: string, message: string, config: number = MessageConfig.RELIABLE_ORDERED): Promise<void> {
    return this.sendRoom(userId, encodeText(message), false, config);
  }

  /** Sends bytes to one member. */
  sendUserBinaryMessage(userId: string, message: BufferSource, config: number = MessageConfig.RELIABLE_ORDERED): Promise<void> {
    return this.sendRoom(userId, toBytes(message), true, config);
  }

  /** Broadcasts text to every other member (reliable, ordered). */
  sendRoomMessage(message: string): Promise<void> {
    return this.sendRoom("", encodeText(message), false, MessageConfig.RELIABLE_ORDERED, true);
  }

  /** Broadcasts bytes to every other member. */
  sendRoomBinaryMessage(message: BufferSource): Promise<void> {
    return this.sendRoom("", toBytes(message), true, MessageConfig.RELIABLE_ORDERED, true);
  }

  private sendRoom(to: string, payload: Uint8Array, binary: boolean, config: number, broadcast = false): Promise<void> {
    const room = this.room;
    const kind = broadcast ? "room" : "user";
    if (!room || room.phase === "joining") return this.failNow(kind, 100);
    if (config !== 0 && config !== 1 && config !== 2) return this.failNow(kind, 1000);
    if (payload.length > MAX_PAYLOAD) return this.failNow(kind, 103);
    if (!broadcast && !to) return this.failNow(kind, 104);
    const msgId = this.nextMsgID++;
    const stream = broadcast ? RELIABLE : config;
    const bytes = toBinary(
      PacketSchema,
      create(PacketSchema, {
        body: {
          case: "message",
          value: { msgId, to, broadcast, binary, payload, senderInstance: this.senderInstance },
        },
        room: room.handle,
      }),
    );
    const reliable = stream === RELIABLE;
    const result = this.track(msgId, kind, to, reliable, reliable ? bytes : undefined);
    if (room.phase === "rejoining" || !this.transport?.isOpen) {
      room.heldSends.push({ stream, bytes });
    } else if (!this.transport.writable(stream)) {
      this.settle(msgId, 102);
    } else {
      // The lazy acks the room owes ride with a reliable message: one
      // data-channel message, where their timer would have sent another.
      // The message goes first, so the server relays it before it
      // settles the acks.
      const acks = stream === RELIABLE ? room.acks.takeLazy() : null;
      this.transport.write(stream, bytes, ...ackPackets(room.handle, acks));
    }
    return result;
  }

  private failNow(kind: PendingSend["kind"], result: number): Promise<never> {
    const err = sendError(result);
    this.emitResult(kind, 0n, result);
    return Promise.reject(err);
  }

  private track(msgId: bigint, kind: PendingSend["kind"], to: string, reliable: boolean, packet?: Uint8Array): Promise<any> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.settle(msgId, 1), MESSAGE_TIMEOUT_MS);
      this.pending.set(msgId, { kind, to, reliable, resolve, reject, timer, packet });
    });
  }

  /** Gives a send its one result; later ones for the same ID are dropped. */
  /** A receiver's ack, up to upTo, of the reliable sends of kind to peer: each is Success. */
  private settleAcked(kind: "user" | "outside", peer: string, upTo: bigint): void {
    for (const [id, s] of this.pending) {
      if (s.kind === kind && s.reliable && s.to === peer && id <= upTo) this.settle(id, 0);
    }
  }

  private settle(msgId: bigint, result: number, ack?: Uint8Array): void {
    const p = this.pending.get(msgId);
    if (!p) return;
    this.pending.delete(msgId);
    clearTimeout(p.timer);
    const ok = p.kind === "room" ? result === 200 : result === 0;
    this.emitResult(p.kind, msgId, result, ack);
    if (ok) p.resolve(p.kind === "server" ? { message: copyBuffer(ack ?? new Uint8Array()) } : undefined);
    else p.reject(sendError(result));
  }

  private emitResult(kind: PendingSend["kind"], msgId: bigint, error: number, ack?: Uint8Array): void {
    const ev = {
      user: "onUserMessageSendResult",
      room: "onRoomMessageSendResult",
      outside: "onUserMessageSendResultOutsideRoom",
      server: "onServerMessageSendResult",
    }[kind] as EventName;
    const payload: Record<string, unknown> = { msgid: Number(msgId), error };
    if (kind === "server") payload.message = copyBuffer(ack ?? new Uint8Array());
    this.emit(ev, payload);
  }

  // ---- packets

  private onPacket(t: Transport, stream: number, p: Packet): void {
    if (this.transport !== t) return;
    const room = this.room;
    if (!room || p.room !== room.handle) return; // stray: a room just left
    switch (p.body.case) {
      case "message":
        this.onRoomMessage(room, stream, p.body.value);
        return;
      case "ack":
        this.settleAcked("user", p.body.value.peer, p.body.value.upTo);
        return;
      case "result":
        this.settle(p.body.value.msgId, p.body.value.code);
        return;
    }
  }

  private onRoomMessage(room: RoomState, stream: number, m: Message): void {
    if (stream === RELIABLE) {
      if (m.senderInstance !== 0n) {
        const key = `${m.from}\u0000${m.senderInstance}`;
        const last = room.seen.get(key);
        if (last !== undefined && m.msgId <= last) {
          this.ack(room, m); // a duplicate: acknowledged again, as urgently as its kind, or its sender never gets its Success
          return;
        }
        room.seen.set(key, m.msgId);
      }
      this.ack(room, m);
    }
    const from = m.from;
    const message = m.binary ? copyBuffer(m.payload) : decodeText(m.payload);
    const ev: EventName = m.broadcast
      ? m.binary
        ? "onRoomBinaryMessageReceived"
        : "onRoomMessageReceived"
      : m.binary
        ? "onUserBinaryMessageReceived"
        : "onUserMessageReceived";
    this.deliver(room, () => this.emit(ev, { userId: from, message }));
  }

  /** Runs an event of the room now, or once its join completes. */
  private deliver(room: RoomState, f: () => void): void {
    if (room.phase === "joined") f();
    else room.held.push(f);
  }

  /**
   * Owes the server an ack of m, a reliable message of the room: soon for
   * a user message, whose sender waits for it; lazily for a broadcast.
   */
  private ack(room: RoomState, m: Message): void {
    if (m.broadcast) room.acks.ackLazy(m.from, m.msgId, m.payload.length);
    else room.acks.ack(m.from, m.msgId);
  }

  /**
   * Sends the room's acks on its reliable channel, as one batch when there
   * are several. Acks for a room that is gone, or that has no transport,
   * are dropped: the server delivers the messages again after a rejoin.
   */
  private sendRoomAcks(room: RoomState, upTo: Map<string, bigint>): void {
    if (this.room !== room || !this.transport) return;
    this.transport.write(RELIABLE, ...ackPackets(room.handle, upTo));
  }

  // ---- signaling events

  private onFrame(f: ServerFrame): void {
    const room = this.room;
    switch (f.body.case) {
      case "roomJoined": {
        const v = f.body.value;
        if (!room || v.roomId !== room.roomId) return;
        room.pages.push(...v.members);
        if (!v.more) {
          room.listDone = true;
          this.maybeJoined(room);
        }
        return;
      }
      case "presence": {
        const v = f.body.value;
        if (!room || v.roomId !== room.roomId) return;
        for (const c of v.changes) {
          if (c.change.case === "joined") this.memberJoined(room, c.change.value);
          else if (c.change.case === "left") this.memberLeft(room, c.change.value.userId, c.change.value.reason);
        }
        return;
      }
      case "userJoined":
        if (room && f.body.value.roomId === room.roomId && f.body.value.member) this.memberJoined(room, f.body.value.member);
        return;
      case "userLeft":
        if (room && f.body.value.roomId === room.roomId) this.memberLeft(room, f.body.value.userId, f.body.value.reason);
        return;
      case "roomRemoved": {
        const v = f.body.value;
        if (!room || v.roomId !== room.roomId) return;
        const err = roomError(v.code, v.reason);
        this.dropRoom(room, err);
        this.notifyLeave(room, UserOfflineReason.DROPPED);
        this.emit("onError", { errorCode: roomCodeName(v.code), result: v.code, errorMessage: v.reason });
        return;
      }
      case "tokenWillExpire":
        if (room && f.body.value.roomId === room.roomId) this.emit("onTokenWillExpire", {});
        return;
      case "goAway":
        return; // the close follows; the reconnect starts over
      case "loggedOut": {
        const login = this.login_;
        this.login_ = null;
        this.serverParamsSet = false;
        if (login) this.emit("onLogout", { reason: f.body.value.reason });
        return;
      }
      case "message": {
        const m = f.body.value;
        if (m.reliable) this.outsideAcks.ack(m.from, m.msgId);
        const message = m.binary ? copyBuffer(m.payload) : decodeText(m.payload);
        this.emit(m.binary ? "onUserBinaryMessageReceivedOutsideRoom" : "onUserMessageReceivedOutsideRoom", {
          userId: m.from,
          message,
        });
        return;
      }
      case "ack":
        this.settleAcked("outside", f.body.value.peer, f.body.value.upTo);
        return;
      case "result":
        this.settle(f.body.value.msgId, f.body.value.code);
        return;
      case "serverResult":
        this.settle(f.body.value.msgId, f.body.value.code, f.body.value.ack);
        return;
    }
  }

  private memberJoined(room: RoomState, m: Member): void {
    this.deliver(room, () => {
      if (this.room !== room) return;
      room.members.set(m.userId, m.extraInfo);
      this.emit("onUserJoined", { userInfo: { userId: m.userId, extraInfo: m.extraInfo } });
    });
  }

  private memberLeft(room: RoomState, userId: string, reason: number): void {
    this.deliver(room, () => {
      if (this.room !== room) return;
      const extraInfo = room.members.get(userId) ?? "";
      room.members.delete(userId);
      this.emit("onUserLeave", { userInfo: { userId, extraInfo }, reason });
    });
  }

  // ---- outside rooms

  private async answer(body: ClientBody): Promise<ServerFrame> {
    await this.connect();
    return this.signal.request(body);
  }

  /** Logs in for messages outside rooms; rejects with LOGIN_INVALID_TOKEN, LOGIN_FAILED, LOGIN_INVALID_USER_ID. */
  async login(token: string, userId: string): Promise<void> {
    if (this.login_) throw loginError(-1001, "already logged in");
    const started = Date.now();
    const login = { userId, token, loggedIn: false };
    this.login_ = login;
    let code = -1003;
    let reason = "";
    try {
      const f = await this.answer({ case: "login", value: { appId: this.appId, token, userId } });
      if (f.body.case === "login") ({ code, reason } = f.body.value);
    } catch (e) {
      reason = String(e);
    }
    this.emit("onLoginResult", { userId, errorCode: code, elapsed: Date.now() - started });
    if (code !== 0) {
      if (this.login_ === login) this.login_ = null;
      throw loginError(code, reason);
    }
    login.loggedIn = true;
  }

  /** Logs out; resolves once the server has answered. */
  async logout(): Promise<void> {
    const login = this.login_;
    if (!login) return;
    this.login_ = null;
    this.serverParamsSet = false;
    await this.answer({ case: "logout", value: {} }).catch(() => {});
    this.emit("onLogout", { reason: LogoutReason.LOGOUT });
  }

  /** Replaces the login token the engine logs in with again after a lost session. */
  updateLoginToken(token: string): void {
    if (this.login_) this.login_.token = token;
  }

  /** Resolves to a {@link UserOnlineStatus}: 0 offline, 1 online, 2 unreachable. */
  async getPeerOnlineStatus(userId: string): Promise<0 | 1 | 2> {
    if (!this.login_) throw sendError(105, "not logged in");
    const f = await this.answer({ case: "peerStatus", value: { userId } });
    const status = (f.body.case === "peerStatus" ? f.body.value.status : 0) as 0 | 1 | 2;
    this.emit("onGetPeerOnlineStatus", { userId, status });
    return status;
  }

  sendUserMessageOutsideRoom(userId: string, message: string, config: number = MessageConfig.RELIABLE_ORDERED): Promise<void> {
    return this.sendOutside(userId, encodeText(message), false, config);
  }

  sendUserBinaryMessageOutsideRoom(userId: string, message: BufferSource, config: number = MessageConfig.RELIABLE_ORDERED): Promise<void> {
    return this.sendOutside(userId, toBytes(message), true, config);
  }

  private sendOutside(to: string, payload: Uint8Array, binary: boolean, config: number): Promise<void> {
    if (!this.login_?.loggedIn) return this.failNow("outside", 105);
    if (config !== 0 && config !== 1 && config !== 2) return this.failNow("outside", 1000);
    if (payload.length > MAX_PAYLOAD) return this.failNow("outside", 103);
    if (!to) return this.failNow("outside", 104);
    const msgId = this.nextMsgID++;
    const reliable = config === MessageConfig.RELIABLE_ORDERED;
    const result = this.track(msgId, "outside", to, reliable);
    this.signal.notifyInTurn({ case: "send", value: { msgId, to, binary, payload, reliable } }, () => this.pending.has(msgId));
    return result;
  }

  /** Sets where server messages go; rejects with the ServerParamsResponse code (105, 17). */
  async setServerParams(signature: string, url: string): Promise<void> {
    if (!this.login_?.loggedIn) throw sendError(105, "not logged in");
    const f = await this.answer({ case: "serverParams", value: { signature, url } });
    const code = f.body.case === "serverParams" ? f.body.value.code : 1000;
    this.serverParamsSet = code === 200;
    this.emit("onServerParamsSetResult", { error: code });
    if (code !== 200) throw sendError(code, f.body.case === "serverParams" ? f.body.value.reason : "");
  }

  /** Posts text to the application server; resolves with its answer `{ message: ArrayBuffer }`. */
  sendServerMessage(message: string): Promise<{ message: ArrayBuffer }> {
    return this.sendServer(encodeText(message), false);
  }

  sendServerBinaryMessage(message: BufferSource): Promise<{ message: ArrayBuffer }> {
    return this.sendServer(toBytes(message), true);
  }

  private sendServer(payload: Uint8Array, binary: boolean): Promise<{ message: ArrayBuffer }> {
    if (!this.login_?.loggedIn) return this.failNow("server", 105);
    if (!this.serverParamsSet) return this.failNow("server", 106);
    if (payload.length > MAX_PAYLOAD) return this.failNow("server", 103);
    const msgId = this.nextMsgID++;
    const result = this.track(msgId, "server", "", false);
    this.signal.notifyInTurn({ case: "serverMessage", value: { msgId, binary, payload } }, () => this.pending.has(msgId));
    return result;
  }

  // ---- life

  /** Leaves, logs out, and closes the connection; the engine is of no further use. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    if (this.room && this.signal.connected) await this.leaveRoom().catch(() => {});
    this.destroyed = true;
    this.stopIdleTimer();
    this.room?.acks.clear();
    this.room = null;
    this.login_ = null;
    for (const id of [...this.pending.keys()]) this.settle(id, 2);
    this.outsideAcks.clear();
    this.transport?.close();
    this.transport = null;
    this.signal.close();
    globalThis.removeEventListener?.("pagehide", this.onPageHide);
    this.setState(ConnectionState.DISCONNECTED);
  }

  /**
   * Test and demo hook: cuts the signaling WebSocket as a network drop
   * would (the session is detached at the server, not ended); the engine
   * resumes it on a new connection.
   */
  dropConnectionForTesting(): void {
    this.signal.drop();
  }

  /**
   * Test hook: the signaling replay buffer's frames (at most 1024 once
   * messages wait) and the messages waiting for room in it.
   */
  signalQueuedForTesting(): { kept: number; waiting: number } {
    return this.signal.queued;
  }

  /**
   * Test hook: closes the PeerConnection as a failure would; the engine
   * builds a new one and rejoins its room on it.
   */
  dropTransportForTesting(): void {
    const t = this.transport;
    if (!t) return;
    t.close();
    this.onTransportFailed(t);
  }
}

/** Creates an engine for an app; it connects on its first joinRoom or login. */
export function createEngine(appId: string, config?: EngineConfig): Engine {
  return new Engine(appId, config);
}

/** Destroys an engine (engine.destroy()). */
export function destroyEngine(engine: { destroy(): Promise<void> }): Promise<void> {
  return engine.destroy();
}

/** The acks upTo (peer to message ID) as packets of the room with handle. */
function ackPackets(handle: number, upTo: Map<string, bigint> | null): Uint8Array[] {
  if (!upTo) return [];
  return [...upTo].map(([peer, id]) =>
    toBinary(PacketSchema, create(PacketSchema, { body: { case: "ack", value: { peer, upTo: id } }, room: handle })),
  );
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function encodeText(s: string): Uint8Array {
  return encoder.encode(typeof s === "string" ? s : String(s));
}

function decodeText(b: Uint8Array): string {
  return decoder.decode(b);
}

function toBytes(m: BufferSource): Uint8Array {
  if (m instanceof Uint8Array) return m;
  if (ArrayBuffer.isView(m)) return new Uint8Array(m.buffer, m.byteOffset, m.byteLength);
  return new Uint8Array(m);
}

/** An ArrayBuffer of its own: the payload must not alias the packet's buffer. */
function copyBuffer(b: Uint8Array): ArrayBuffer {
  return b.slice().buffer as ArrayBuffer;
}
