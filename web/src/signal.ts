// The signaling client: one WebSocket at a time carrying one session, with
// both sides' frames numbered (seq/acked), a replay buffer, and resume on
// a new connection within the server's grace period (docs/protocol.md,
// "Sessions and resume"). The Go SDK's counterpart is internal/signal.

import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import {
  ClientFrameSchema,
  ServerFrameSchema,
  type ClientFrame,
  type ServerFrame,
} from "./gen/parley/v1/signal_pb";

/** The body of a ClientFrame, as protobuf-es spells a oneof. */
export type ClientBody = NonNullable<MessageInitShape<typeof ClientFrameSchema>["body"]>;

/** What the signaling client tells its owner. */
export interface SignalEvents {
  /** A server frame to handle (not Welcome, ResumeResponse, SeqAck or answers). */
  frame(f: ServerFrame): void;
  /** The connection dropped; the client is trying again. */
  reconnecting(): void;
  /** Tries have failed for LOST_AFTER_MS; the client keeps trying. */
  lost(): void;
  /**
   * A new connection is up: resumed true when the session was taken over
   * (nothing lost), false when the server refused the resume and the
   * connection holds a new, empty session (rooms and login are gone).
   */
  reconnected(resumed: boolean): void;
}

/** Why a request got no answer. */
export class SignalError extends Error {}

// Timers of docs/protocol.md section 8, as the Go SDK has them.
const CONNECT_TIMEOUT_MS = 10_000; // one try: WebSocket, Welcome, ResumeResponse
const SEQ_ACK_DELAY_MS = 100; // a SeqAck 100 ms after the first unacknowledged frame
const SEQ_ACK_EVERY = 32; // or at once when 32 are unacknowledged
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 5_000;
const LOST_AFTER_MS = 10_000;

interface Waiter {
  resolve(f: ServerFrame): void;
  reject(e: Error): void;
}

/**
 * The replay buffer's bound for messages: numbered frames sent and not yet
 * acknowledged by the server, as the Go SDK's signaling queue. A burst of
 * messages beyond it, or messages sent while the connection is down, wait
 * for the server's acks (notifyInTurn): the page's memory stays bounded,
 * and a resume replays at most this many frames at once, well inside the
 * server's frame rate.
 */
export const QUEUE_LEN = 1024;

/** A message frame waiting for room in the replay buffer. */
interface Waiting {
  body: ClientBody;
  wanted: () => boolean;
}

/** A numbered frame kept until the server's acked covers it. */
interface Kept {
  seq: bigint;
  frame: ClientFrame;
}

export class Signal {
  private ws: WebSocket | null = null;
  private nextRequestID = 1n;
  private lastSent = 0n; // the last client seq given out
  private lastReceived = 0n; // the highest server seq received in order
  private unacked = 0; // server frames received since acked last went out
  private ackTimer: ReturnType<typeof setTimeout> | null = null;
  private kept: Kept[] = []; // the replay buffer, in seq order
  private waiting: Waiting[] = []; // messages waiting for room in kept, in call order
  private session: { id: string; secret: Uint8Array } | null = null;
  private waiters = new Map<bigint, Waiter>();
  private ready = false; // the handshake of the current connection is done
  private connecting: Promise<void> | null = null;
  private looping = false; // the reconnect loop runs
  private readyWaiters: { resolve(): void; reject(e: Error): void }[] = [];
  private closed = false;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly url: string,
    private readonly on: SignalEvents,
    /** Whether to come back after a drop: false lets an idle engine go quiet. */
    private readonly wanted: () => boolean,
  ) {}

  /** True while a connection has finished its handshake. */
  get connected(): boolean {
    return this.ready;
  }

  /** The current session's ID (for logs and tests). */
  get sessionID(): string {
    return this.session?.id ?? "";
  }

  /**
   * Resolves once a connection has finished its handshake: at once when
   * one has; when the reconnect loop succeeds while it runs; else after a
   * try of its own, which rejects if it fails (a first connect is not
   * retried: the call that needed it fails).
   */
  connect(): Promise<void> {
    if (this.closed) return Promise.reject(new SignalError("engine destroyed"));
    if (this.ready) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.readyWaiters.push({ resolve, reject });
      if (this.looping || this.connecting) return;
      this.connecting = this.dial(this.session !== null)
        .catch((e: Error) => {
          const ws = this.readyWaiters;
          this.readyWaiters = [];
          for (const w of ws) w.reject(e);
        })
        .finally(() => {
          this.connecting = null;
        });
    });
  }

  /** Sends a numbered request and resolves with its answer. */
  request(body: ClientBody): Promise<ServerFrame> {
    return new Promise((resolve, reject) => {
      const id = this.send(body, true);
      this.waiters.set(id, { resolve, reject });
    });
  }

  /** Sends a numbered frame that gets no answer (a message, an ack). */
  notify(body: ClientBody): void {
    this.send(body, true);
  }

  /**
   * Sends a numbered message frame that gets no answer, in call order,
   * once the replay buffer holds fewer than QUEUE_LEN frames. One whose
   * send is no longer wanted when its turn comes (it timed out, or the
   * session it was for is gone) is dropped.
   */
  notifyInTurn(body: ClientBody, wanted: () => boolean): void {
    while (this.waiting.length > 0 && !this.waiting[0].wanted()) this.waiting.shift();
    if (this.waiting.length === 0 && this.kept.length < QUEUE_LEN) this.send(body, true);
    else this.waiting.push({ body, wanted });
  }

  /** Frames in the replay buffer and messages waiting for room in it (tests). */
  get queued(): { kept: number; waiting: number } {
    return { kept: this.kept.length, waiting: this.waiting.length };
  }

  /** Closes for good with 1000: the session ends at the server. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.stopAckTimer();
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    ws?.close(1000, "engine destroyed");
    this.waiting = [];
    this.failWaiters("engine destroyed");
    for (const w of this.readyWaiters) w.reject(new SignalError("engine destroyed"));
    this.readyWaiters = [];
  }

  /**
   * Cuts the connection without a close frame the server would read as
   * the end of the session (4000): the session is detached, as after a
   * network drop, and the client resumes it. For tests and the demo.
   */
  drop(): void {
    this.ws?.close(4000, "dropped");
  }

  private send(body: ClientBody, numbered: boolean): bigint {
    const id = this.nextRequestID++;
    const frame = create(ClientFrameSchema, { requestId: id, body });
    if (numbered) {
      frame.seq = ++this.lastSent;
      this.kept.push({ seq: frame.seq, frame });
    }
    if (this.ready) this.write(frame);
    return id;
  }

  private write(frame: ClientFrame, ws = this.ws): void {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    frame.acked = this.lastReceived;
    this.unacked = 0;
    this.stopAckTimer();
    ws.send(toBinary(ClientFrameSchema, frame));
  }

  private stopAckTimer(): void {
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.ackTimer = null;
  }

  private sendSeqAck(): void {
    this.ackTimer = null;
    if (!this.ready || this.unacked === 0) return;
    const frame = create(ClientFrameSchema, {
      requestId: this.nextRequestID++,
      body: { case: "ackOnly", value: {} },
    });
    this.write(frame);
  }

  /**
   * One try: opens a WebSocket, waits for Welcome, and when resuming sends
   * ResumeRequest and waits for its answer. Resolves once frames flow.
   */
  private dial(resume: boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let ws: WebSocket;
      try {
        ws = new WebSocket(this.url);
      } catch (e) {
        reject(e instanceof Error ? e : new SignalError(String(e)));
        return;
      }
      ws.binaryType = "arraybuffer";
      this.ws = ws;
      let done = false;
      let resumeID = 0n;
      const timer = setTimeout(() => fail("connect timeout"), CONNECT_TIMEOUT_MS);
      const fail = (why: string) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (this.ws === ws) this.ws = null;
        ws.close(1000, why);
        reject(new SignalError(why));
      };
      const ok = (resumed: boolean | null) => {
        done = true;
        clearTimeout(timer);
        this.ready = true;
        if (resumed === false) this.resetSession();
        // Frames numbered while away (or sent before the Welcome): the
        // replay buffer holds every frame the server has not acknowledged.
        for (const k of this.kept) this.write(k.frame, ws);
        resolve();
        const rw = this.readyWaiters;
        this.readyWaiters = [];
        for (const w of rw) w.resolve();
        if (resumed !== null) this.on.reconnected(resumed);
      };
      ws.onmessage = (ev) => {
        if (this.ws !== ws) return;
        let f: ServerFrame;
        try {
          f = fromBinary(ServerFrameSchema, new Uint8Array(ev.data as ArrayBuffer));
        } catch {
          ws.close(1007, "signal: malformed frame");
          return;
        }
        if (!done) {
          if (f.body.case === "welcome") {
            if (!resume || !this.session) {
              this.session = { id: f.body.value.sessionId, secret: f.body.value.resumeSecret };
              ok(resume ? false : null);
              return;
            }
            this.pendingWelcome = { id: f.body.value.sessionId, secret: f.body.value.resumeSecret };
            resumeID = this.nextRequestID++;
            const req = create(ClientFrameSchema, {
              requestId: resumeID,
              body: {
                case: "resume",
                value: { sessionId: this.session.id, secret: this.session.secret, ack: this.lastReceived },
              },
            });
            ws.send(toBinary(ClientFrameSchema, req));
            return;
          }
          if (f.body.case === "resume" && f.requestId === resumeID && resumeID !== 0n) {
            if (f.body.value.ok) {
              this.dropAcked(f.body.value.ack);
              ok(true);
            } else {
              this.session = this.pendingWelcome;
              ok(false);
            }
            return;
          }
          if (f.body.case === "ackOnly") return;
          ws.close(1002, "frame before the handshake ended");
          return;
        }
        this.receive(f, ws);
      };
      ws.onclose = () => {
        if (!done) {
          fail("connection closed");
          return;
        }
        if (this.ws !== ws) return;
        this.ws = null;
        this.ready = false;
        this.stopAckTimer();
        if (!this.closed) this.reconnect();
      };
    });
  }

  private pendingWelcome: { id: string; secret: Uint8Array } | null = null;

  /** A refused resume: the connection holds the new session of its Welcome. */
  private resetSession(): void {
    this.lastSent = 0n;
    this.lastReceived = 0n;
    this.unacked = 0;
    this.kept = [];
    this.waiting = []; // their sends fail with the session (Engine.onReconnected)
    this.failWaiters("session lost");
  }

  private failWaiters(why: string): void {
    const ws = this.waiters;
    this.waiters = new Map();
    for (const w of ws.values()) w.reject(new SignalError(why));
  }

  private dropAcked(acked: bigint): void {
    let i = 0;
    while (i < this.kept.length && this.kept[i].seq <= acked) i++;
    if (i > 0) this.kept.splice(0, i);
    while (this.waiting.length > 0 && this.kept.length < QUEUE_LEN) {
      const w = this.waiting.shift()!;
      if (w.wanted()) this.send(w.body, true);
    }
  }

  private receive(f: ServerFrame, ws: WebSocket): void {
    this.dropAcked(f.acked);
    if (f.seq !== 0n) {
      if (f.seq <= this.lastReceived) return; // a replay of a frame we have
      if (f.seq !== this.lastReceived + 1n) {
        ws.close(1002, "signal: frame sequence gap");
        return;
      }
      this.lastReceived = f.seq;
      if (++this.unacked >= SEQ_ACK_EVERY) this.sendSeqAck();
      else if (!this.ackTimer) this.ackTimer = setTimeout(() => this.sendSeqAck(), SEQ_ACK_DELAY_MS);
    }
    switch (f.body.case) {
      case "ackOnly":
      case "welcome":
      case "resume":
        return;
    }
    if (f.requestId !== 0n) {
      const w = this.waiters.get(f.requestId);
      if (w) {
        this.waiters.delete(f.requestId);
        w.resolve(f);
        return;
      }
    }
    this.on.frame(f);
  }

  /**
   * Tries again at once, then after random waits between half and all of
   * a bound that starts at 100 ms and doubles up to 5 s, without end (the
   * Go SDK's schedule). An engine with nothing to keep stops instead.
   */
  private reconnect(): void {
    if (!this.wanted()) {
      this.failWaiters("connection closed");
      return;
    }
    this.on.reconnecting();
    this.looping = true;
    const started = Date.now();
    let bound = BACKOFF_FIRST_MS;
    let lostSaid = false;
    const attempt = () => {
      this.retryTimer = null;
      if (this.closed) return;
      if (!this.wanted()) {
        this.looping = false;
        return;
      }
      this.connecting = this.dial(this.session !== null)
        .then(
          () => {
            this.looping = false;
          },
          () => {
            if (this.closed) return;
            if (!lostSaid && Date.now() - started >= LOST_AFTER_MS) {
              lostSaid = true;
              this.on.lost();
            }
            const wait = bound / 2 + Math.random() * (bound / 2);
            bound = Math.min(bound * 2, BACKOFF_MAX_MS);
            this.retryTimer = setTimeout(attempt, wait);
          },
        )
        .finally(() => {
          this.connecting = null;
        });
    };
    attempt();
  }
}
