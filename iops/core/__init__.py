"""The pure core: slots and rates to a tariff, state and clock to what each service gets, and the
views of both. Nothing here does I/O, reads the clock or imports from services or app."""
