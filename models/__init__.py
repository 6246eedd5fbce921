# The IRIS data and nets ship inside anne-host as anne_host.models, so `anne-host demo` works from a pip install.
