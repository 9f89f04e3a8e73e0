"""The conformance suite: one module per area, every test a numbered rule (see ``docs/rules.md``).

The plugin collects this package when a driver is named; the tests are synchronous functions that run their
scenario in a fresh event loop, so they work under any async plugin or mode the driver's project uses.
"""
