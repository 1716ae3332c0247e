"""Payment history: the signed-in person's payments, paged, filtered and exported as CSV (issue 7)."""
