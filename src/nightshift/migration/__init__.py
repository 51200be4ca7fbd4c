"""Moving a workload from streaming to batch: shadow runs, parity, and the switch gate."""
