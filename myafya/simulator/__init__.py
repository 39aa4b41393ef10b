"""A browser page that plays a phone dialling the USSD service, for developers and trainers."""
