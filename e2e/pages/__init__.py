"""Page objects: one class per page a journey touches, so a journey is written once and runs
against the local stand-ins or the real services (Auth0 Universal Login, Stripe's hosted pages)."""
