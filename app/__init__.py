"""The PySide6 desktop application: windows, widgets, Qt threads and settings only.

Model and vision logic live in `fer_core`; this package is the only one that imports Qt.
"""
