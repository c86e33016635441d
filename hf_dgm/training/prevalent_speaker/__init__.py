"""Training of the Prevalent speaker (instruction generator) on R2R (`run`)."""
