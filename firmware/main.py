# Copy to the board as /main.py to start the ANNE server at boot (`anne-host deploy
# --boot` does this). A monitor.json with "at_boot": true runs the condition monitor
# first, with no host attached, until a host sends a byte (docs/MONITOR.md). Ctrl-C in
# Thonny or mpremote returns to the REPL.
import anne

anne.boot()
