"""Rules errors: every problem names file, line and field, and all problems come at once."""

from __future__ import annotations

from dataclasses import dataclass

from vision.errors import OnscreenError


@dataclass(frozen=True)
class RuleProblem:
    """One mistake in the rules directory, located as precisely as the YAML allows."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class RulesError(OnscreenError):
    """The rules directory does not validate; ``problems`` lists every mistake found."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        self.problems = list(problems)
        head = f"{len(self.problems)} problem(s) in rules"
        super().__init__(head + "\n" + "\n".join(f"  {p}" for p in self.problems))
