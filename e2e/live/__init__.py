"""Live mode: page objects for the real services (Auth0 Universal Login, Stripe's hosted pages in
test mode) and the `Services` object that hands a journey the right page objects for its mode."""
