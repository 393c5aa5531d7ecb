/**
 * Result codes of the Lua scripts (see the header of each .lua file): positive for success,
 * negative for business outcomes. Shared by the scripts and the TypeScript that reads them.
 */
export const enum TakeCode {
  Taken = 1,
  AlreadyTaken = 2,
  Short = -1,
  NotLive = -2,
  StaleEpoch = -3,
  Closed = -4,
}

export const enum OrderCode {
  Done = 1,
  Replayed = 2,
  NotFound = -1,
  AlreadyReleased = -2,
  AlreadyExpired = -3,
  InProgress = -4,
  Rejected = -5,
  AlreadyConfirmed = -6,
  NotConfirmed = -7,
  UnknownItem = -8,
  NotDue = -9,
  NotPending = -10,
  /** The order's retention is over: it changes no more (includes/retention.lua). */
  RetentionEnded = -11,
}

export const enum HoldCode {
  Held = 1,
  AlreadyHeld = 2,
  OverLimit = -1,
  Closed = -4,
}

/** order-begin and order-reject; order-reserve answers Exists too. */
export const enum BeginCode {
  New = 1,
  Exists = 2,
  /** Nothing written: the order id is in the filter of forgotten ids (ask the archive). */
  MaybeForgotten = 5,
}

/** order-reserve, besides BeginCode.Exists. */
export const enum ReserveHereCode {
  Reserved = 3,
  /** Nothing written: the partition could not give the whole quantity. */
  Short = 4,
}

/** order-plan and order-commit. */
export const enum PendingCode {
  Done = 1,
  /** The order is no longer PENDING (recovery rolled it back underneath). */
  NotPending = -1,
}

export const enum UntakeCode {
  Released = 1,
  Replayed = 2,
}

export const enum CreateCode {
  Created = 1,
  Existed = 2,
}

export const enum RetireCode {
  Retired = 1,
  /** Retired or drained before: deregister it too. */
  NotLive = 2,
  /** Not empty, or re-owned under another epoch: leave it alone. */
  Kept = -1,
}

export const enum WithdrawCode {
  Withdrawn = 1,
  Replayed = 2,
  NotLive = -2,
}

/** order-ship. */
export const enum ShipCode {
  Shipped = 1,
  Replayed = 2,
  /** The order is not CONFIRMED (or does not exist). */
  NotConfirmed = -1,
  NotInOrder = -2,
  /** Nothing of the SKU is committed any more: all released or shipped. */
  NothingCommitted = -3,
  /** The order's retention is over: it changes no more. */
  RetentionEnded = -4,
}

/** order-sealed (the forgetter's read). */
export const enum SealedCode {
  Sealed = 1,
  /** The order is gone, or open again: its index entry was removed. */
  Gone = -1,
  /** Its retention is not over on the Redis clock: the entry now says when. */
  NotDue = -2,
  /** A release of it is still being applied. */
  Releasing = -3,
}

/** partition-repair. */
export const enum RepairCode {
  Repaired = 1,
  /** Another repair ran since the cut: nothing done. */
  Changed = -1,
}
