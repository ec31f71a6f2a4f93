// The one table of engine error codes. Each row: the enumerator, the machine-readable id used in
// JSON (events, Status::ToJson, the Python exception classes' `code`), and the name printed in
// messages. Status, its JSON form and discomfort.errors all derive from this table.
#pragma once

#define DISCOMFORT_ERROR_CODES(X)                                                               \
  X(kOk, "ok", "ok")                                                                            \
  X(kInvalidArgument, "invalid_argument", "invalid argument") /* unusable flag or option */     \
  X(kParse, "parse", "parse error")                           /* malformed JSON or format */    \
  X(kNotFound, "not_found", "not found")                      /* file, key, node, port */       \
  X(kAlreadyExists, "already_exists", "already exists")       /* duplicate port or key */       \
  X(kTypeMismatch, "type_mismatch", "type mismatch")          /* value or link of wrong type */ \
  X(kCycle, "cycle", "cycle")                                 /* dependency cycle */            \
  X(kValidation, "validation", "validation error")            /* ComfyUI rejected a prompt */   \
  X(kExecution, "execution", "execution error")               /* a node raised */               \
  X(kIO, "io", "I/O error")                                   /* read or write failed */        \
  X(kNoSpace, "no_space", "no space left")                    /* disk full */                   \
  X(kCancelled, "cancelled", "cancelled")                     /* interrupted by user or API */  \
  X(kTimeout, "timeout", "timeout")                           /* iteration past its limit */    \
  X(kPython, "python", "python error")                        /* Python outside a node */       \
  X(kInternal, "internal", "internal error")                  /* a bug: invariant broken */
