"""Errors that are the user's to fix: the command line prints them as one line and exits 2."""


class UserError(Exception):
    """Bad input from the user (a suite file, a data folder, a flag).

    The message must be one line naming what was wrong and, where it helps, what is
    allowed. ``bench`` catches it, prints ``error: <message>`` and exits with code 2.
    """


class DataError(UserError):
    """A data file is missing, corrupt or inconsistent (names the file and the problem)."""
