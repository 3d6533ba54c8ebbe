"""Payments: PhonePe confirmations that become the only resume a payment interrupt accepts."""
