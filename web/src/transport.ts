// The session's one PeerConnection with its three data channels,
// negotiated out of band on SCTP streams 0, 1 and 2 (docs/protocol.md
// section 5), and a writer per channel that coalesces what waits into
// batches (section 6, "Batches"). The Go SDK's counterpart is
// internal/transport.

import { fromBinary } from "@bufbuild/protobuf";
import { PacketSchema, type Packet } from "./gen/parley/v1/packet_pb";

/** Stream IDs: the MessageConfig values. */
export const RELIABLE = 0;
export const UNRELIABLE_ORDERED = 1;
export const UNRELIABLE_UNORDERED = 2;

const GATHER_TIMEOUT_MS = 5_000;
const IDLE_BUFFER = 64 << 10; // a channel is idle with at most 64 KiB in its SCTP buffer
const BATCH_MAX = 32 << 10; // a batch is at most 32 KiB

export interface TransportEvents {
  /** A packet (a batch's entries one by one), with the stream it came on. */
  packet(stream: number, p: Packet): void;
  /** All three channels are open. */
  open(): void;
  /** The PeerConnection failed or closed; it is of no further use. */
  failed(): void;
}

export class Transport {
  readonly pc: RTCPeerConnection;
  private readonly channels: RTCDataChannel[];
  private readonly queues: Uint8Array[][] = [[], [], []];
  private opened = 0;
  private dead = false;
  isOpen = false;

  constructor(private readonly on: TransportEvents) {
    this.pc = new RTCPeerConnection({ iceServers: [] });
    const mk = (label: string, id: number, init: RTCDataChannelInit) => {
      const dc = this.pc.createDataChannel(label, { ...init, negotiated: true, id });
      dc.binaryType = "arraybuffer";
      dc.bufferedAmountLowThreshold = IDLE_BUFFER;
      dc.onopen = () => {
        if (++this.opened === 3 && !this.dead) {
          this.isOpen = true;
          this.on.open();
        }
      };
      dc.onmessage = (ev) => this.read(id, ev.data as ArrayBuffer);
      dc.onbufferedamountlow = () => this.drain(id);
      dc.onclose = () => this.fail();
      return dc;
    };
    this.channels = [
      mk("parley-reliable", RELIABLE, { ordered: true }),
      mk("parley-unreliable-ordered", UNRELIABLE_ORDERED, { ordered: true, maxRetransmits: 0 }),
      mk("parley-unreliable-unordered", UNRELIABLE_UNORDERED, { ordered: false, maxRetransmits: 0 }),
    ];
    this.pc.onconnectionstatechange = () => {
      const s = this.pc.connectionState;
      if (s === "failed" || s === "closed") this.fail();
    };
  }

  /** The complete offer, every candidate gathered (no trickle ICE). */
  async offer(): Promise<string> {
    await this.pc.setLocalDescription(await this.pc.createOffer());
    if (this.pc.iceGatheringState !== "complete") {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, GATHER_TIMEOUT_MS);
        this.pc.addEventListener("icegatheringstatechange", () => {
          if (this.pc.iceGatheringState === "complete") {
            clearTimeout(timer);
            resolve();
          }
        });
      });
    }
    return this.pc.localDescription?.sdp ?? "";
  }

  /** Applies the server's answer; the channels open once ICE, DTLS and SCTP are up. */
  answer(sdp: string): Promise<void> {
    return this.pc.setRemoteDescription({ type: "answer", sdp });
  }

  /**
   * Writes encoded packets on a stream, in order: at once while the
   * channel is idle, several as one batch (of up to 32 KiB: a bigger
   * packet goes alone), else queued and sent in batches as its buffer
   * drains. Returns false when the channel cannot take them (not open).
   */
  write(stream: number, ...packets: Uint8Array[]): boolean {
    if (!this.writable(stream)) return false;
    const q = this.queues[stream];
    const idle = q.length === 0 && this.channels[stream].bufferedAmount <= IDLE_BUFFER;
    q.push(...packets);
    if (idle) this.drain(stream);
    return true;
  }

  /** Whether a write on the stream would be taken now. */
  writable(stream: number): boolean {
    return !this.dead && this.channels[stream].readyState === "open";
  }

  /** Bytes queued on a stream, in the SDK and in the channel's buffer. */
  buffered(stream: number): number {
    let n = this.channels[stream].bufferedAmount;
    for (const b of this.queues[stream]) n += b.length;
    return n;
  }

  close(): void {
    this.dead = true;
    this.isOpen = false;
    for (const dc of this.channels) {
      dc.onclose = null;
      dc.onmessage = null;
    }
    this.pc.onconnectionstatechange = null;
    this.pc.close();
  }

  private fail(): void {
    if (this.dead) return;
    this.close();
    this.on.failed();
  }

  /** Sends what waits on a stream, as batches of up to 32 KiB. */
  private drain(stream: number): void {
    const dc = this.channels[stream];
    const q = this.queues[stream];
    while (q.length > 0 && dc.readyState === "open" && dc.bufferedAmount <= IDLE_BUFFER) {
      const first = q.shift()!;
      if (q.length === 0 || first.length + 6 > BATCH_MAX) {
        dc.send(first);
        continue;
      }
      const parts: Uint8Array[] = [first];
      let size = entrySize(first.length);
      while (q.length > 0 && size + entrySize(q[0].length) <= BATCH_MAX) {
        const p = q.shift()!;
        size += entrySize(p.length);
        parts.push(p);
      }
      dc.send(batch(parts, size));
    }
  }

  private read(stream: number, data: ArrayBuffer): void {
    let p: Packet;
    try {
      p = fromBinary(PacketSchema, new Uint8Array(data));
    } catch {
      return; // malformed: dropped
    }
    if (p.batch.length > 0) {
      if (p.body.case !== undefined) return; // a body and a batch: malformed
      for (const e of p.batch) {
        if (e.batch.length === 0 && e.body.case !== undefined && e.room !== 0) this.on.packet(stream, e);
      }
      return;
    }
    if (p.body.case !== undefined && p.room !== 0) this.on.packet(stream, p);
  }
}

function varintSize(n: number): number {
  let s = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    s++;
  }
  return s;
}

function entrySize(n: number): number {
  return 1 + varintSize(n) + n;
}

/** A batch: each packet as Packet.batch (tag 0x22, length, bytes). */
function batch(parts: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let o = 0;
  for (const p of parts) {
    out[o++] = 0x22;
    let n = p.length;
    while (n >= 0x80) {
      out[o++] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 128);
    }
    out[o++] = n;
    out.set(p, o);
    o += p.length;
  }
  return out;
}
