"""notify's HTTP API: webhook subscriptions and their deliveries (admins), the feed and preferences (everyone)."""

from fastapi import APIRouter

from services.notify.api.people import router as people_router
from services.notify.api.webhooks import router as webhooks_router

router = APIRouter()
router.include_router(webhooks_router)
router.include_router(people_router)
