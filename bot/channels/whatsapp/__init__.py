"""WhatsApp over Twilio: webhooks, signature check, rendering and the Messages API sender."""
