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
}

export const enum HoldCode {
  Held = 1,
  AlreadyHeld = 2,
  OverLimit = -1,
  Closed = -4,
}
