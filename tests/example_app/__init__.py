"""The example app of the seed's last section: one feature, a producer-only API app and a worker app.

``features.py`` is the application code (it never names a driver); ``app.py`` and ``app_memory.py`` declare the
two root modules and differ in exactly one line, the import that picks the driver. ``fake_driver.py`` is a tiny
in-process driver written against the seam, used where the reference memory driver is not installed.
"""
