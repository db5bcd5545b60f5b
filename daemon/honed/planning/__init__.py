"""Planning a job before it trains: what this machine is (hardware), how big the model is (model_shape),
what the data costs (data_profile), the settings honed fills in (defaults) and the time and memory it will take
(estimate, calibrated by a short measured run: probe)."""
