"""Exit codes shared by every `dedup` subcommand (documented in `dedup --help`)."""

OK = 0  # everything held
FAILED = 1  # the command ran and found a failure: unreadable files, refused batch, audit failure
USAGE = 2  # bad arguments or configuration: nothing was done
UNAVAILABLE = 3  # the coordinator could not be reached; safe to retry later

EPILOG = """exit codes:
  0  success
  1  the command ran and found a failure (unreadable files, a refused batch, a failed audit)
  2  bad arguments or configuration; nothing was done
  3  the coordinator could not be reached; run again later, nothing is lost or sent twice
"""
