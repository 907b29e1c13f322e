"""The verbs: create, mount, start, stop, set, destroy, exec/enter, status and collect.

Each module holds one verb (or a pair that are each other's undo).  Every verb validates
all of its input before the first side effect, takes the CT's lock when it changes
anything, and leaves state that the next command can verify and clean up.
"""
