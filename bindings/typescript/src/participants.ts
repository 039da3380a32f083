/** The presence lookups both the client core and `room.messaging` answer from their views. */
import type { RemoteParticipant } from "./events.js";

export class ParticipantView {
  /** Present participants by id, in the order they arrived. */
  protected present = new Map<string, RemoteParticipant>();

  /** Participants with messaging enabled, as of the last event applied. */
  get remoteParticipants(): RemoteParticipant[] {
    return [...this.present.values()];
  }

  getParticipant(id: string): RemoteParticipant | null {
    return this.present.get(id) ?? null;
  }

  /** The one present participant with this name, or null when none or several carry it
   * (PROTOCOL.md §9.5: names are not unique, and a newcomer taking a present participant's
   * name must not capture what is addressed to that name). */
  getParticipantByName(name: string): RemoteParticipant | null {
    let found: RemoteParticipant | null = null;
    for (const participant of this.present.values()) {
      if (participant.name !== name) continue;
      if (found !== null) return null;
      found = participant;
    }
    return found;
  }
}
