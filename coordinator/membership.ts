// Who is in the job. Ranks are handed out at join (lowest free) and never
// change because someone else left; a worker silent past the heartbeat timeout
// is declared lost.

export type MemberStatus = 'idle' | 'busy' | 'joining' | 'paused' | 'stopping' | 'lost';

export interface Member {
  id: string;
  rank: number;
  host: string;
  pid: number;
  backend: string;
  backendVersion: string;
  device: string;
  metricsPort?: number;
  joinedAt: number;
  /** Time of its latest join request (a rejoin updates it; joinedAt stays). */
  lastJoinAt: number;
  lastSeen: number;
  status: MemberStatus;
  /** Time of the latest heartbeat that reported idle. */
  lastIdleAt: number;
  partsDone: number;
  failures: number;
  lastPartSeconds: number;
}

export interface JoinInfo {
  host: string;
  pid: number;
  backend: string;
  backendVersion: string;
  device: string;
  metricsPort?: number;
}

export class Membership {
  private readonly members = new Map<string, Member>();
  /** Failures survive a member's loss so the dashboard shows them when it rejoins. */
  private readonly failures = new Map<string, number>();

  constructor(private readonly options: { heartbeatTimeoutMs: number; now?: () => number }) {}

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  join(id: string, info: JoinInfo): { member: Member; rejoined: boolean } {
    const existing = this.members.get(id);
    const t = this.now();
    if (existing !== undefined) {
      Object.assign(existing, info, { lastSeen: t, lastJoinAt: t, status: 'idle' as const, lastIdleAt: t });
      return { member: existing, rejoined: true };
    }
    const used = new Set([...this.members.values()].map((m) => m.rank));
    let rank = 0;
    while (used.has(rank)) rank++;
    const member: Member = { id, rank, ...info, joinedAt: t, lastJoinAt: t, lastSeen: t, status: 'idle', lastIdleAt: t, partsDone: 0, failures: this.failures.get(id) ?? 0, lastPartSeconds: 0 };
    this.members.set(id, member);
    return { member, rejoined: false };
  }

  heartbeat(id: string, hb: { status: MemberStatus; partsDone?: number; lastPartSeconds?: number }): Member | undefined {
    const m = this.members.get(id);
    if (m === undefined) return undefined;
    const t = this.now();
    m.lastSeen = t;
    m.status = hb.status;
    if (hb.status === 'idle') m.lastIdleAt = t;
    if (hb.partsDone !== undefined) m.partsDone = hb.partsDone;
    if (hb.lastPartSeconds !== undefined) m.lastPartSeconds = hb.lastPartSeconds;
    return m;
  }

  /** Any message from a member proves it alive. */
  touch(id: string): void {
    const m = this.members.get(id);
    if (m !== undefined) m.lastSeen = this.now();
  }

  remove(id: string, failed: boolean): Member | undefined {
    const m = this.members.get(id);
    if (m === undefined) return undefined;
    this.members.delete(id);
    if (failed) {
      m.failures += 1;
      this.failures.set(id, m.failures);
    }
    m.status = 'lost';
    return m;
  }

  /** Declares silent members lost and returns them. */
  sweep(): Member[] {
    const t = this.now();
    const lost: Member[] = [];
    for (const m of [...this.members.values()]) {
      if (t - m.lastSeen > this.options.heartbeatTimeoutMs) {
        const removed = this.remove(m.id, true);
        if (removed !== undefined) lost.push(removed);
      }
    }
    return lost;
  }

  get(id: string): Member | undefined {
    return this.members.get(id);
  }

  has(id: string): boolean {
    return this.members.has(id);
  }

  /** Live members in rank order. */
  live(): Member[] {
    return [...this.members.values()].sort((a, b) => a.rank - b.rank);
  }

  get size(): number {
    return this.members.size;
  }
}
