"""The domain: cases, their lifecycle, deadlines, routing and KPIs."""
