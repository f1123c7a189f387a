"""Qt only: the tray icon and menu as a render of the supervisor state, and the windows they open."""
