"""Tests of the in-memory reference driver itself (the conformance suite judges it separately)."""
