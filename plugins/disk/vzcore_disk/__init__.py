"""vzcore disk plugin: layouts beyond simfs and the first-level disk quota."""
