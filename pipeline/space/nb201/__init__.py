"""NAS-Bench-201 (Dong & Yang, ICLR 2020): its cell operations, architecture strings, networks and benchmark."""
