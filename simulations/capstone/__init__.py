"""The capstone lab: the course's patterns composed into one service on a seeded bad day."""
