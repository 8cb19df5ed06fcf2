"""LeadFlow's shared package: the public event contract and the adapters every service uses."""
