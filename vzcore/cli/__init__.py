"""The command-line tools: ``vzctl`` (a lazy click group) and ``vzlist``.

Nothing here holds logic beyond parsing arguments and printing results; the verbs live
in :mod:`vzcore.lifecycle`.  Command modules are imported only when their command runs,
and plugins are loaded only by commands that need them, so ``vzctl --version`` and
``vzctl --help`` stay fast.
"""
