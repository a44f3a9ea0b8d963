"""A custom Outdial agent: remind a patient of an appointment and record the answer.

Run it as its own worker (it registers under OUTDIAL_AGENT_NAME):

    OUTDIAL_AGENT_NAME=reminder-agent python -m agent_runtime.examples.appointment_reminder dev

and create an Outdial agent whose `worker_name` is "reminder-agent". Calls then carry
dynamic variables such as {"patient": "Ada", "appointment": "Tuesday at 10am",
"clinic": "Northside Clinic"}; the answer comes back in `call.ended` as `data.results`.
"""

from __future__ import annotations

import logging
from typing import Any

from livekit.agents import Agent, RunContext, function_tool

from agent_runtime import CallContext, call_tools, run_app

logger = logging.getLogger("outdial.examples.reminder")

FALLBACK_INSTRUCTIONS = (
    "You are a friendly assistant calling on behalf of {clinic}. Remind {patient} of their "
    "appointment on {appointment}. Ask whether they will attend. If they cannot, ask for a "
    "better time. Record the answer with record_answer, thank them, and end the call. "
    "Keep every reply to one or two short sentences."
)


class AppointmentReminder(Agent):
    def __init__(self, call: CallContext) -> None:
        self._call = call
        variables = call.dynamic_variables
        # The agent's configured instructions (already rendered) win; the fallback lets
        # the example work with an agent whose instructions are empty.
        instructions = call.instructions.strip() or FALLBACK_INSTRUCTIONS.format(
            clinic=variables.get("clinic", "the clinic"),
            patient=variables.get("patient", "the patient"),
            appointment=variables.get("appointment", "the scheduled date"),
        )
        # end_call / report_voicemail / transfer_call come from the runtime
        super().__init__(instructions=instructions, tools=call_tools(call))

    @function_tool
    async def record_answer(
        self, context: RunContext[Any], will_attend: bool, preferred_time: str = ""
    ) -> str:
        """Record the patient's answer.

        Args:
            will_attend: True if the patient confirms the appointment.
            preferred_time: When the patient would rather come, if they cannot attend.
        """
        self._call.results.update({"will_attend": will_attend, "preferred_time": preferred_time})
        # The client's metadata (e.g. its own booking id) is for code like this, never for
        # the model: the runtime keeps it out of the prompt.
        booking = self._call.metadata.get("booking_id")
        logger.info("answer recorded", extra={"booking_id": booking, "will_attend": will_attend})
        return "Recorded. Thank the patient and end the call."


def build_agent(call: CallContext) -> Agent:
    return AppointmentReminder(call)


if __name__ == "__main__":
    raise SystemExit(run_app(build_agent))
