// The acks a receiver owes: one cumulative ack per sender (the highest
// message ID accepted), sent a moment after the first one owed
// (docs/protocol.md, "Ack"). The Go SDK's counterpart is
// internal/acks.Batcher.

export interface AckBatcherConfig {
  /** How long an urgent ack waits (a user message's: its sender waits for it). */
  delayMs: number;
  /** How long a lazy ack may wait (a broadcast's: only the server's copy waits for it). Default: delayMs. */
  lazyMs?: number;
  /** The lazily acked messages' payload bytes past which the flush is urgent. Default: no bound. */
  lazyBytes?: number;
  /** Sends the acks, peer to the highest message ID. */
  send(upTo: Map<string, bigint>): void;
}

/**
 * Gathers acks and sends them together: a burst costs one ack per sender,
 * not one per message. An urgent ack brings the flush forward, and every
 * flush sends all that is owed.
 */
export class AckBatcher {
  private owed = new Map<string, bigint>();
  private bytes = 0; // the lazily acked messages' payload bytes since the last flush
  private urgent = false; // the flush to come is an urgent one
  private timer: ReturnType<typeof setTimeout> | null = null;
  private due = 0; // when the timer fires, in performance.now() ms

  constructor(private readonly config: AckBatcherConfig) {}

  /** Owes an ack of message id from peer, whose sender waits for it. */
  ack(peer: string, id: bigint): void {
    this.add(peer, id, true, 0);
  }

  /** Owes an ack of message id from peer, of size payload bytes, that nobody but the server waits for. */
  ackLazy(peer: string, id: bigint, size: number): void {
    this.add(peer, id, false, size);
  }

  private add(peer: string, id: bigint, urgent: boolean, size: number): void {
    const cur = this.owed.get(peer);
    if (cur === undefined || id > cur) this.owed.set(peer, id);
    this.bytes += size;
    if (this.bytes > (this.config.lazyBytes ?? Infinity)) urgent = true;
    if (urgent) this.urgent = true;
    const delay = urgent ? this.config.delayMs : (this.config.lazyMs ?? this.config.delayMs);
    const due = performance.now() + delay;
    if (this.timer !== null) {
      if (due >= this.due) return; // the flush to come is soon enough
      clearTimeout(this.timer);
    }
    this.due = due;
    this.timer = setTimeout(() => this.flush(), delay);
  }

  private flush(): void {
    const upTo = this.owed;
    this.clear();
    if (upTo.size > 0) this.config.send(upTo);
  }

  /**
   * Takes the acks owed, as the next flush would send them, and cancels
   * that flush, if it is a lazy one: for a send that carries them. An
   * urgent ack is left to its own flush, at most delayMs away, as in the
   * Go SDK, where one riding with an answer to the message it acked put
   * its work in the answer's round trip. Null when nothing is owed or an
   * urgent ack is.
   */
  takeLazy(): Map<string, bigint> | null {
    if (this.owed.size === 0 || this.urgent) return null;
    const upTo = this.owed;
    this.clear();
    return upTo;
  }

  /** Drops the acks owed and the flush to come. */
  clear(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.owed = new Map();
    this.bytes = 0;
    this.urgent = false;
  }
}
