# Copy to the board as /main.py to start the ANNE server at boot
# (`anne-host deploy --boot` does this). Ctrl-C in Thonny or mpremote returns to the REPL.
import anne.server

anne.server.run()
