"""The one error type that means "the user's input is wrong".

Raised anywhere (spec, schema, data, checkpoint); the command line prints its
message as one line and exits with code 2, without a traceback.  The message
names the file, key or value at fault.
"""


class UserError(Exception):
    """Bad input: a spec key, a data file, a checkpoint, a command-line value."""
