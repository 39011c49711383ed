package httpapi

import (
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/mlnode/mlnode/appliance"
)

// webhookRoutes registers the webhook endpoints, all for admins: a URL may
// carry a receiver's token, and a test sends data off the node.
func (s *Server) webhookRoutes(v1 fiber.Router, admin fiber.Handler) {
	v1.Post("/webhooks", admin, s.createWebhook)
	v1.Get("/webhooks", admin, s.listWebhooks)
	v1.Get("/webhooks/:name", admin, s.getWebhook)
	v1.Delete("/webhooks/:name", admin, s.deleteWebhook)
	v1.Post("/webhooks/:name/test", admin, s.testWebhook)
	v1.Get("/webhooks/:name/deliveries", admin, s.listWebhookDeliveries)
}

func (s *Server) webhooks() (appliance.WebhookService, error) {
	if s.svc.Webhooks == nil {
		return nil, appliance.Errorf(appliance.EUNAVAILABLE, "this node sends no webhooks")
	}
	return s.svc.Webhooks, nil
}

type webhookRequest struct {
	Name        string   `json:"name"`
	URL         string   `json:"url"`
	Secret      string   `json:"secret"`
	Events      []string `json:"events"`
	Description string   `json:"description"`
}

// createWebhook: POST /api/v1/webhooks → 201 with the secret, the only time
// it is shown.
func (s *Server) createWebhook(c *fiber.Ctx) error {
	svc, err := s.webhooks()
	if err != nil {
		return err
	}
	var req webhookRequest
	if err := s.decodeJSONBody(c, &req); err != nil {
		return err
	}
	w, secret, err := svc.CreateWebhook(c.UserContext(), &appliance.Webhook{Name: req.Name, URL: req.URL, Secret: req.Secret,
		Events: req.Events, Description: req.Description})
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderLocation, "/api/v1/webhooks/"+w.Name)
	return c.Status(fiber.StatusCreated).JSON(struct {
		*appliance.Webhook
		Secret string `json:"secret"`
	}{w, secret})
}

func (s *Server) listWebhooks(c *fiber.Ctx) error {
	svc, err := s.webhooks()
	if err != nil {
		return err
	}
	list, err := svc.Webhooks(c.UserContext())
	if err != nil {
		return err
	}
	if list == nil {
		list = []*appliance.Webhook{}
	}
	return c.JSON(fiber.Map{"webhooks": list})
}

func (s *Server) getWebhook(c *fiber.Ctx) error {
	svc, err := s.webhooks()
	if err != nil {
		return err
	}
	w, err := svc.Webhook(c.UserContext(), copyString(c.Params("name")))
	if err != nil {
		return err
	}
	return c.JSON(w)
}

func (s *Server) deleteWebhook(c *fiber.Ctx) error {
	svc, err := s.webhooks()
	if err != nil {
		return err
	}
	if err := svc.DeleteWebhook(c.UserContext(), copyString(c.Params("name"))); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

// testWebhook: POST /api/v1/webhooks/{name}/test → 202 with the pending
// delivery; its outcome shows in the deliveries.
func (s *Server) testWebhook(c *fiber.Ctx) error {
	svc, err := s.webhooks()
	if err != nil {
		return err
	}
	name := copyString(c.Params("name"))
	d, err := svc.TestWebhook(c.UserContext(), name)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderLocation, "/api/v1/webhooks/"+name+"/deliveries")
	return c.Status(fiber.StatusAccepted).JSON(d)
}

func (s *Server) listWebhookDeliveries(c *fiber.Ctx) error {
	svc, err := s.webhooks()
	if err != nil {
		return err
	}
	limit := 50
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return appliance.Invalid("limit", "must be an integer from 1 to 1000")
		}
		limit = n
	}
	list, err := svc.WebhookDeliveries(c.UserContext(), copyString(c.Params("name")), limit)
	if err != nil {
		return err
	}
	if list == nil {
		list = []*appliance.WebhookDelivery{}
	}
	return c.JSON(fiber.Map{"deliveries": list})
}
