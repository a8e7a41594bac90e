"""``medvl`` subcommands added by governance (registered in the ``medvl.commands`` entry-point group):
``medvl deid`` (de-identification) and ``medvl audit`` (the tamper-evident audit log)."""
