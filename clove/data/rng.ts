// Seeded PRNG for the data pipeline: splitmix32. Its whole state is one uint32, so a checkpoint stores a
// single number, and `fork` derives independent streams from integer keys (seed, epoch, index, view) without
// touching the parent, so the views of a sample never depend on how many samples were drawn before it.

const GOLDEN_GAMMA = 0x9e3779b9;

/** Murmur3's 32-bit finaliser: a bijective avalanche mix (every input bit flips each output bit ~50%). */
export function mix32(value: number): number {
  let z = value | 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}

export interface Rng {
  /** Uniform in [0, 1) with 32 random bits. */
  uniform(): number;
  /** Uniform in [lo, hi); both bounds are finite and hi > lo. */
  uniformIn(lo: number, hi: number): number;
  /** Uniform integer in [lo, hiExclusive). */
  int(lo: number, hiExclusive: number): number;
  /** Standard normal (Box–Muller without a cached spare, so the state stays one number). */
  normal(): number;
  /** An independent stream keyed by integers; does not advance this stream. */
  fork(...keys: number[]): Rng;
  /** The full state: `rngFromState(r.state())` continues exactly where `r` is. */
  state(): number;
}

class SplitMix32 implements Rng {
  private current: number;

  constructor(state: number) {
    this.current = state >>> 0;
  }

  private nextUint32(): number {
    this.current = (this.current + GOLDEN_GAMMA) >>> 0;
    return mix32(this.current);
  }

  uniform(): number {
    return this.nextUint32() / 4294967296;
  }

  uniformIn(lo: number, hi: number): number {
    if (!(Number.isFinite(lo) && Number.isFinite(hi) && hi >= lo)) {
      throw new Error(`uniformIn: need finite lo <= hi, got [${lo}, ${hi})`);
    }
    return lo + (hi - lo) * this.uniform();
  }

  int(lo: number, hiExclusive: number): number {
    if (!(Number.isSafeInteger(lo) && Number.isSafeInteger(hiExclusive) && hiExclusive > lo)) {
      throw new Error(`int: need integers lo < hiExclusive, got [${lo}, ${hiExclusive})`);
    }
    // The modulo bias of a 32-bit draw is below span/2^32, irrelevant for image-sized ranges.
    return lo + Math.floor(this.uniform() * (hiExclusive - lo));
  }

  normal(): number {
    // 1 - u lies in (0, 1], so the logarithm is finite.
    const radius = Math.sqrt(-2 * Math.log(1 - this.uniform()));
    return radius * Math.cos(2 * Math.PI * this.uniform());
  }

  fork(...keys: number[]): Rng {
    let h = mix32(this.current ^ 0x5bd1e995);
    keys.forEach((key, position) => {
      if (!Number.isSafeInteger(key)) throw new Error(`fork: keys must be safe integers, got ${key} at ${position}`);
      // Fold both 32-bit halves so that keys >= 2^32 (and negative keys) stay distinct.
      const low = key >>> 0;
      const high = Math.floor(key / 4294967296) >>> 0;
      h = mix32(h + Math.imul(position + 1, GOLDEN_GAMMA) + mix32(low ^ mix32(high + 0x27d4eb2f)));
    });
    return new SplitMix32(h);
  }

  state(): number {
    return this.current;
  }
}

/** A stream seeded by an integer (any safe integer; it is hashed, so nearby seeds give unrelated streams). */
export function createRng(seed: number): Rng {
  if (!Number.isSafeInteger(seed)) throw new Error(`createRng: seed must be a safe integer, got ${seed}`);
  return new SplitMix32(0).fork(seed);
}

/** Restore a stream from `state()` (e.g. read back from a checkpoint). */
export function rngFromState(state: number): Rng {
  if (!(Number.isInteger(state) && state >= 0 && state <= 0xffffffff)) {
    throw new Error(`rngFromState: state must be a uint32, got ${state}`);
  }
  return new SplitMix32(state);
}
