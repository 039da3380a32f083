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

  /** The first present participant with this name (names are not unique). */
  getParticipantByName(name: string): RemoteParticipant | null {
    for (const participant of this.present.values()) if (participant.name === name) return participant;
    return null;
  }
}
