"""intake's HTTP API: translate requests, call the application, map outcomes to responses."""

from fastapi import APIRouter

from services.intake.api import bulk, leads

router = APIRouter()
router.include_router(leads.router)
router.include_router(bulk.router)
