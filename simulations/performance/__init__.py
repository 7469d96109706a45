"""The performance lessons' studies: each lesson's scenario, simulation, closed forms and plots."""
