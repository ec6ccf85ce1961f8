"""Local HTTP stand-ins for Twilio and AWS that tests reach with the real clients."""
