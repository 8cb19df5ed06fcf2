"""LeadFlow's services. Each is independent: none imports another; they meet only on the topic."""
