"""OpenVZ's action scripts for vzcore (docs/actions.md)."""
