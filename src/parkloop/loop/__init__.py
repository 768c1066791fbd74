"""The closed loop: monitors, retraining, publish gate and rollback."""
