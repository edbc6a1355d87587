"""Exit codes shared by every `dedup` subcommand (documented in `dedup --help`)."""

OK = 0  # everything held
FAILED = 1  # the command ran and found a failure: unreadable files, refused batch, audit failure
USAGE = 2  # bad arguments or configuration: nothing was done
UNAVAILABLE = 3  # the coordinator could not be reached; safe to retry later
INCONSISTENT = 4  # the coordinator showed a log inconsistent with one this node verified; evidence written

EPILOG = """exit codes:
  0  success
  1  the command ran and found a failure (unreadable files, a refused batch,
     a failed audit)
  2  bad arguments or configuration; nothing was done
  3  the coordinator could not be reached; run again later, nothing is lost
     or sent twice
  4  the coordinator showed a log inconsistent with a checkpoint this node
     verified (a fork or a rollback); nothing was cosigned, evidence was
     written to the node's evidence/ folder (named in the message): keep it
     and tell the other members
"""
