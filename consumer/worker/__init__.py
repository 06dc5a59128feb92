"""The KCL side: the record processor, the daemon's protocol, checkpoints, start-up."""
