package service

import (
	"context"
	"log/slog"
	"time"
)

// DecisionEvent is one decision log record. It never carries credentials.
type DecisionEvent struct {
	DecisionID   string
	Revision     string
	Allowed      bool
	Cached       bool
	PrincipalID  string
	Provider     string
	Action       string
	ResourceType string
	ResourceID   string
	Reasons      []string
	Error        string
	Duration     time.Duration
}

// DecisionLogger receives every decision.
type DecisionLogger interface {
	Log(ctx context.Context, e DecisionEvent)
}

type noopDecisionLogger struct{}

func (noopDecisionLogger) Log(context.Context, DecisionEvent) {}

type slogDecisionLogger struct{ log *slog.Logger }

func newSlogDecisionLogger(log *slog.Logger) DecisionLogger {
	return slogDecisionLogger{log: log.With("log", "decision")}
}

func (l slogDecisionLogger) Log(ctx context.Context, e DecisionEvent) {
	l.log.LogAttrs(ctx, slog.LevelInfo, "decision",
		slog.String("decision_id", e.DecisionID),
		slog.String("revision", e.Revision),
		slog.Bool("allowed", e.Allowed),
		slog.Bool("cached", e.Cached),
		slog.String("principal", e.PrincipalID),
		slog.String("provider", e.Provider),
		slog.String("action", e.Action),
		slog.String("resource_type", e.ResourceType),
		slog.String("resource_id", e.ResourceID),
		slog.Any("reasons", e.Reasons),
		slog.String("error", e.Error),
		slog.Int64("duration_ns", e.Duration.Nanoseconds()),
	)
}
