"""Deliberately broken drivers, one bug each, and the test that the conformance suite catches every one."""
