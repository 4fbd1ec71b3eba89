"""The state-backend stack every environment stack depends on."""
