"""The running service: the live engine loop, the intake writer, the re-planner, the event stream broker,
the territory directory and the readers reports are computed from. Nothing here speaks HTTP."""
