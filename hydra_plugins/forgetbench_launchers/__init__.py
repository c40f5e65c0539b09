"""forgetbench's Hydra launchers (Hydra finds launcher plug-ins only in the hydra_plugins namespace)."""
